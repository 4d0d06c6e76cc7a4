"""Development tools, apart from what production runs (the ``dev`` extra).

- ``devtools.embedded``: the embedded Tansu broker (memory only) and free loopback ports;
- ``devtools.capture``: a local SMTP capture with an outbox page to read what was sent;
- ``devtools.dev``: ``outage dev``, everything locally in one command;
- ``devtools.sample``: sample customers and a demo incident (``devtools/data``);
- ``devtools.records``: builders of input records (customers, incident and ticket events) for the bench and
  the tests;
- ``devtools.procs``: child processes of the bench and the tests, an ``outage worker`` process among them.

The production image installs the package without this extra, so it carries neither aiosmtpd
nor the broker binary; ``outage dev`` says how to install them when they are missing.
"""
