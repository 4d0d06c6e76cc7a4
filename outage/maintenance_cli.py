"""``outage maintenance schedule|update|cancel|complete|list``: planned-maintenance events from a terminal
(``outage/cli.py`` adds the parser and hands the command here). Each event is validated with
``schemas.MaintenanceEvent`` before it is produced (a bad one: exit 2 with one line naming the field);
``list`` folds ``outage.maintenance-events`` through the domain's rules, as the workers do."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from core.settings import Settings
from outage.event_input import add_scope_flags, add_text_flags, add_title_flags, event_data, event_fields
from streams.client import fold_topic, produce, validate


def add_parser(sub) -> None:
    m = sub.add_parser("maintenance", help="schedule, update, cancel, complete and list planned maintenance")
    msub = m.add_subparsers(dest="action", required=True)

    def fields(sp, scheduled: bool) -> None:
        add_text_flags(sp, "what happens")
        if scheduled is None:
            return
        add_title_flags(sp)
        add_scope_flags(sp)
        sp.add_argument("--starts-at", dest="starts_at", help="start, RFC 3339 with offset")
        sp.add_argument("--ends-at", dest="ends_at", help="end, RFC 3339 with offset")
        sp.add_argument("--reminder", type=int, dest="reminder_seconds",
                        help="seconds before the start for the reminder (default 3600)")

    s = msub.add_parser("schedule", help="schedule a maintenance")
    s.add_argument("--id", dest="maintenance_id", help="maintenance id (generated when absent)")
    fields(s, True)
    u = msub.add_parser("update", help="change a maintenance's window, text, scope or reminder")
    u.add_argument("maintenance_id")
    fields(u, False)
    for name, what in (("cancel", "cancel a maintenance"), ("complete", "a maintenance ended early")):
        sp = msub.add_parser(name, help=what)
        sp.add_argument("maintenance_id")
        fields(sp, None)
    msub.add_parser("list", help="list planned maintenance")


def _fields(args) -> dict:
    data = event_fields(args)
    for name in ("starts_at", "ends_at", "reminder_seconds"):
        if getattr(args, name, None) is not None:
            data[name] = getattr(args, name)
    return data


def send(settings: Settings, event_type: str, maintenance_id: str | None, fields: dict) -> dict:
    from schemas import MaintenanceEvent
    from streams.topics import MAINTENANCE_EVENTS

    data = event_data(event_type, "maintenance_id", maintenance_id, fields, id_prefix="mnt",
                      now=datetime.now(timezone.utc))
    event = validate(MaintenanceEvent, data, f"{event_type} event")
    produce(settings, MAINTENANCE_EVENTS, [(event.maintenance_id, event.model_dump_json().encode())])
    return json.loads(event.model_dump_json())


def read_maintenance(settings: Settings) -> dict:
    """Fold ``maintenance-events`` through the domain's rules: every maintenance as the workers see it."""
    from domain.maintenance import decide
    from schemas import MaintenanceEvent
    from streams.topics import MAINTENANCE_EVENTS

    def step(state, event):
        decision = decide(state, event)
        return decision.state if not decision.error else None

    return fold_topic(settings, MAINTENANCE_EVENTS, MaintenanceEvent, lambda event: event.maintenance_id, step)


def run(args, settings: Settings, out) -> int:
    """``outage maintenance ACTION``; ``out`` prints an object as JSON."""
    if args.action == "list":
        from schemas.common import localize

        now = datetime.now(timezone.utc)
        for st in sorted(read_maintenance(settings).values(), key=lambda s: s.starts_at):
            print(f"{st.maintenance_id}\t{st.phase(now)}\t{st.starts_at.isoformat()}\t{st.ends_at.isoformat()}\t"
                  f"{localize(st.title, 'en')}")
        return 0
    event_type = {"schedule": "scheduled", "update": "updated", "cancel": "cancelled", "complete": "completed"}
    out(send(settings, event_type[args.action], args.maintenance_id, _fields(args)))
    return 0
