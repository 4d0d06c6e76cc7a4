"""Feedback after an incident (the question at the end of every ``resolved`` notice): the rules,
as pure functions.

- One answer per contact per incident: ``feedback_id`` is derived from (incident, customer,
  recipient key) only, so a later answer has the same key on the compacted ``outage.feedback``
  topic and replaces the earlier one.
- A score is one of 1…5, written as that one digit; a comment is optional text, its line breaks
  made ``\\n``, other control characters and surrounding blanks dropped (an empty one is no comment).
- ``FeedbackTally`` keeps the latest answer of each ``feedback_id`` and, per incident, how many
  answers there are and their mean.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

SCORES = (1, 2, 3, 4, 5)   # 1: very hard to stay informed … 5: very easy
FEEDBACK_ID_PREFIX = "fb-"
# control characters a comment may not keep (all but line feeds and tabs; the line breaks are made LF first)
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def feedback_id(incident_id: str, customer_id: str, recipient: str) -> str:
    """The key of a contact's answer about an incident: the same for every answer they give."""
    digest = hashlib.sha256("\x1f".join(("feedback", incident_id, customer_id, recipient)).encode()).hexdigest()
    return FEEDBACK_ID_PREFIX + digest[:32]


def parse_score(value: object) -> int | None:
    """The score a form field or query parameter gives (``"1"`` … ``"5"``, nothing else); None otherwise."""
    if isinstance(value, str) and len(value) == 1 and value.isascii() and value.isdigit() and int(value) in SCORES:
        return int(value)
    return None


def clean_comment(value: str | None) -> str | None:
    """A comment as it is recorded: CR LF and CR made LF, other control characters (invisible in a
    text box) dropped, surrounding whitespace dropped; None when nothing is left."""
    if value is None:
        return None
    text = _INVISIBLE.sub("", value.replace("\r\n", "\n").replace("\r", "\n")).strip()
    return text or None


@dataclass(frozen=True, slots=True)
class Summary:
    answers: int
    mean: float | None   # None while there are no answers; two decimals

    def as_dict(self) -> dict:
        return {"answers": self.answers, "mean": self.mean}


class FeedbackTally:
    """The latest answer of each ``feedback_id``, and per incident the count and sum of their scores."""

    def __init__(self) -> None:
        self._answers: dict[str, tuple[str, int]] = {}         # feedback_id -> (incident_id, score)
        self._incidents: dict[str, list[int]] = {}             # incident_id -> [answers, sum of scores]

    def put(self, feedback_id: str, incident_id: str, score: int) -> None:
        """An answer; it replaces the earlier answer with the same ``feedback_id``."""
        if score not in SCORES:
            raise ValueError(f"a score is one of {SCORES}, not {score!r}")
        self.remove(feedback_id)
        self._answers[feedback_id] = (incident_id, score)
        totals = self._incidents.setdefault(incident_id, [0, 0])
        totals[0] += 1
        totals[1] += score

    def remove(self, feedback_id: str) -> None:
        """Forget an answer (a tombstone on the topic)."""
        earlier = self._answers.pop(feedback_id, None)
        if earlier is None:
            return
        incident_id, score = earlier
        totals = self._incidents[incident_id]
        totals[0] -= 1
        totals[1] -= score
        if totals[0] == 0:
            del self._incidents[incident_id]

    def summary(self, incident_id: str) -> Summary:
        answers, total = self._incidents.get(incident_id, (0, 0))
        return Summary(answers, round(total / answers, 2) if answers else None)

    def __len__(self) -> int:
        return len(self._answers)
