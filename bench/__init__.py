"""The pipeline's benchmark ("Proof under pressure"): ``make bench`` / ``python -m bench``.

Every row measures the pipeline against a reference measured in the same run (so the
numbers compare as ratios on any machine; row 8's, one pass of the audience per interval, is
the physical limit), with real parts only: the embedded Tansu broker, ``outage worker``
processes and Postfix's ``smtp-sink`` as the SMTP server (row 8: a relay in the bench's own
process that accepts so many messages a second, ``bench.relay``).

Modules:
- ``bench.cli``: options, the order of the rows, clean-up on errors and Ctrl-C;
- ``bench.rows``: one function per row of the table;
- ``bench.procs``: the processes the bench starts (broker, sink, workers, py-spy), all stopped at the end;
- ``bench.data``: customers with an exact affected share, incident events;
- ``bench.kafkaio``: producing customers fast, reading the notices topic back;
- ``bench.report``: the rows' data, the table, the JSON files, the profile summary;
- ``bench.takeover``: what a kill -9 mid fan-out did, from the notices topic (row 7);
- ``bench.relay``: a relay accepting so many messages a second, and the judge of the promises kept (row 8).
"""
