"""Turning raw Kafka values into records and records into Kafka values."""

from __future__ import annotations

import json
from typing import TypeVar

import pydantic
from pydantic import BaseModel

from .common import RecordError, record_error_from

MAX_RECORD_BYTES = 1_000_000

M = TypeVar("M", bound=BaseModel)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_record(model: type[M], raw: bytes | str | None) -> M:
    """Parse one record value, or raise ``RecordError`` with a one-line reason.

    Rejected: a null value (tombstone; callers that accept tombstones check for None
    first), more than ``MAX_RECORD_BYTES`` bytes, invalid UTF-8, invalid JSON (NaN and
    Infinity included), JSON that is not an object, and anything ``model`` rejects.
    A leading UTF-8 byte-order mark is ignored.
    """
    data = parse_object(raw)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise record_error_from(exc) from None


# one decoder for every record (``json.loads`` with an option builds a new one at each call)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_object(raw: bytes | str | None) -> dict:
    """The JSON object of one record value, before any model looks at it: ``parse_record``'s
    first half, with the same errors (``RecordError``)."""
    if raw is None:
        raise RecordError("record has no value (tombstone)")
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_RECORD_BYTES:
        raise RecordError(f"record is {size:,} bytes; the limit is {MAX_RECORD_BYTES:,}")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecordError(f"invalid UTF-8 at byte {exc.start}") from None
    text = raw.removeprefix("\ufeff")
    if not text.strip():
        raise RecordError("record is empty")
    try:
        if text.startswith("\ufeff"):  # what json.loads says of a second one
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        data = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:  # NaN / Infinity
        raise RecordError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise RecordError("invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise RecordError(f"expected a JSON object, got {_json_type(data)}")
    return data


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def to_json_bytes(model: BaseModel) -> bytes:
    """Compact UTF-8 JSON of a record. Null fields are written, not dropped (an ``IncidentEvent``
    writes exactly the fields it was given, so an absent field stays absent)."""
    return model.model_dump_json().encode("utf-8")
