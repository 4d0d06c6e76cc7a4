"""Length limits of the input records' texts, stated once (docs/design.md "Length limits", the schemas
and the tests all read them from here).

Every limit is far above what an operator writes by hand, and low enough that no single field
can make a notice impossible to compose or a record unreasonably large. Lengths are counted
in characters (Unicode code points, as Python's ``len``), per locale for localized texts;
ids are counted in bytes of UTF-8 (they become Kafka keys and parts of Message-IDs).
A record over a limit is a schema error naming the field: a dead letter on a topic, a 400 over
HTTP, exit status 2 at the command line.
"""

from __future__ import annotations

MAX_ID_BYTES = 256
"""Every id (customer, incident, event, ticket): at most this many bytes of UTF-8."""

MAX_TITLE_CHARS = 200
"""An incident title, per locale (it goes into every notice's Subject)."""

MAX_MESSAGE_CHARS = 5_000
"""An incident message, per locale (it goes into every notice's body)."""

MAX_NAME_CHARS = 200
"""A customer's, a contact's or a requester's name (contacts' names go into ``To``)."""

MAX_SUBJECT_CHARS = 500
"""A ticket's subject (quoted in the ticket acknowledgement)."""

MAX_LABEL_CHARS = 200
"""A component, region or tier name."""

MAX_COMMENT_CHARS = 2_000
"""A feedback comment (the optional comment box of the feedback page)."""

LIMITS = {
    "ids (bytes of UTF-8)": MAX_ID_BYTES,
    "incident title, per locale": MAX_TITLE_CHARS,
    "incident message, per locale": MAX_MESSAGE_CHARS,
    "customer, contact and requester names": MAX_NAME_CHARS,
    "ticket subject": MAX_SUBJECT_CHARS,
    "component, region and tier names": MAX_LABEL_CHARS,
    "feedback comment": MAX_COMMENT_CHARS,
}
"""Every limit above by what it bounds (for documentation and tests)."""
