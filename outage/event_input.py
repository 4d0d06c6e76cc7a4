"""The fields of an event as a command takes them: a ``--file`` of JSON, then the flags that every
event command shares (``--title``/``--title-ja``, ``--message``/``--message-ja``, ``--components``,
``--regions``), which override it. ``outage/cli.py`` (incidents) and ``outage/maintenance_cli.py``
declare them with ``add_text_flags``, ``add_title_flags`` and ``add_scope_flags`` (between their
own, in the order ``--help`` shows) and add their own fields to what ``event_fields`` gives."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

from streams.client import ClientError as CliError


def add_text_flags(sp, message: str) -> None:
    """``--file``, and ``--message``/``--message-ja`` described as ``message`` (English, Japanese)."""
    sp.add_argument("--file", help="JSON file with the event's fields (flags override it)")
    sp.add_argument("--message", help=f"{message} (English)")
    sp.add_argument("--message-ja", help=f"{message} (Japanese)")


def add_title_flags(sp) -> None:
    sp.add_argument("--title", help="title (English)")
    sp.add_argument("--title-ja", help="title (Japanese)")


def add_scope_flags(sp) -> None:
    sp.add_argument("--components", help="comma-separated components, e.g. api,dashboard")
    sp.add_argument("--regions", help="comma-separated regions; empty or absent: every region")


def localized(en: str | None, ja: str | None):
    """One text, or an object by locale when both are given; None when neither is."""
    if en and ja:
        return {"en": en, "ja": ja}
    return en or ja


def _labels(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def event_fields(args) -> dict:
    """The ``--file`` object (exit 2 naming the file when it is not one), then the shared flags."""
    data: dict = {}
    if args.file:
        try:
            loaded = json.loads(Path(args.file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CliError(f"--file {args.file}: {exc.strerror or exc}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CliError(f"--file {args.file}: not JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise CliError(f"--file {args.file}: a JSON object of the event's fields is expected")
        data.update(loaded)
    title = localized(getattr(args, "title", None), getattr(args, "title_ja", None))
    if title:
        data["title"] = title
    message = localized(args.message, args.message_ja)
    if message:
        data["message"] = message
    if getattr(args, "components", None):
        data["components"] = _labels(args.components)
    if getattr(args, "regions", None) is not None:
        data["regions"] = _labels(args.regions)
    return data


def event_data(event_type: str, id_field: str, given: str | None, fields: dict, *, id_prefix: str,
               now: datetime) -> dict:
    """The record of an event command: ``fields`` (from ``--file`` and the flags) under the command's
    own id and type. A ``--file`` may name the id and the type only as the command does
    (``outage incident update inc-7`` with a file of ``inc-8``'s fields is a mistake, not a choice)."""
    named = fields.pop(id_field, None)
    if given and named is not None and named != given:
        raise CliError(f"--file: {id_field} {named!r} is not the one of the command ({given!r})")
    kind = fields.pop("type", None)
    if kind is not None and kind != event_type:
        raise CliError(f"--file: type {kind!r}, but this command sends a {event_type} event")
    data = {"event_id": fields.pop("event_id", None) or f"cli-{uuid.uuid4().hex[:12]}",
            id_field: given or named or f"{id_prefix}-{uuid.uuid4().hex[:8]}",
            "type": event_type, "at": fields.pop("at", None) or now.isoformat()}
    data.update(fields)
    return data
