"""JSON Schema files for the record models (documentation and outside validators)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from .customer import Customer
from .incident import IncidentDeclare, IncidentEvent
from .outputs import DeadLetter, FeedbackRecord, NoticeRecord, SignalRecord, TicketUpdate
from .ticket import TicketEvent

RECORD_MODELS: dict[str, type[BaseModel]] = {
    "customer": Customer,
    "incident-event": IncidentEvent,
    "ticket-event": TicketEvent,
    "notice": NoticeRecord,
    "ticket-update": TicketUpdate,
    "dead-letter": DeadLetter,
    "feedback": FeedbackRecord,
    "signal": SignalRecord,
    "incident-declare": IncidentDeclare,
}


def export_json_schemas(directory: Path) -> list[Path]:
    """Write ``<name>.schema.json`` for each model of ``RECORD_MODELS`` (creating the
    directory); return the paths written. The per-type rules live in the docstrings only."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in RECORD_MODELS.items():
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
