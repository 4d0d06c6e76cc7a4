"""The urlencoded forms the public pages post (``streams/preferences_web.py``,
``streams/feedback.py``): read strictly (UTF-8, at most ``MAX_FORM_FIELDS`` fields; a real form
has two), each field name with every value it was given, so a page can refuse a field given twice."""

from __future__ import annotations

from urllib.parse import parse_qsl

MAX_FORM_FIELDS = 16


def form_fields(body: bytes) -> dict[str, list[str]] | None:
    """An urlencoded form's fields (name -> values); None when it is not one."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS,
                          errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields
