"""How a worker's lines are written (``OUTAGE_LOG_FORMAT``): ``text`` or ``json``.

``json``: every line one JSON object with ``time`` (RFC 3339, UTC), ``level``, ``logger``,
``message``, and, where they apply, ``incident`` and ``round`` (given with ``extra=`` on the
call, or set around a piece of work with ``log_context``), ``exception`` for a traceback (inside
the one line). Both formats take no address: anything shaped like ``local@domain`` in a message
or a traceback is written ``<address>`` (``redact``), whoever logged it (faust, aiokafka, the
SMTP client, ours).

``logging_config(fmt, level)`` is a ``logging.config.dictConfig`` dictionary for the root logger:
the worker hands it to faust's worker (mode configures logging with it, faust's and aiokafka's
loggers included, and sends stray ``print`` output to a logger), and the delivery helper
processes apply it themselves.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.config
import re
from datetime import datetime, timezone
from typing import Any, Iterator

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ADDRESS = re.compile(r"[^\s<>\"'(),;:\[\]]+@[^\s<>\"'(),;:\[\]]+\.[^\s<>\"'(),;:\[\]]+")
CONTEXT_FIELDS = ("incident", "round")

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("outage_log_context", default={})


def redact(text: str) -> str:
    """``text`` with every address written ``<address>``."""
    return ADDRESS.sub("<address>", text) if "@" in text else text


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Lines logged inside carry ``fields`` (``incident``, ``round``) in the JSON format."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class RedactAddresses(logging.Filter):
    """Writes every address in a record's message and traceback as ``<address>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "@" in message:
            record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and "@" in record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _context.get()
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = context.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = redact(record.exc_text)
        return json.dumps(line, ensure_ascii=False, default=str)


def logging_config(fmt: str, level: int | str = logging.INFO, *, text_format: str = TEXT_FORMAT) -> dict:
    """The ``dictConfig`` of the root logger for ``fmt`` (``text`` or ``json``): one handler on
    stderr, addresses redacted."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: text or json")
    formatter = {"()": JsonFormatter} if fmt == "json" else {"format": text_format}
    if isinstance(level, str):
        level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactAddresses}},
        "formatters": {"outage": formatter},
        "handlers": {"outage": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "outage", "filters": ["redact"]}},
        "root": {"level": level, "handlers": ["outage"]},
    }


def configure(fmt: str, level: int | str = logging.INFO, *, text_format: str = TEXT_FORMAT) -> dict:
    """Apply ``logging_config`` now (the delivery helpers; the worker before faust takes over, and
    faust again with the returned dictionary); Python's warnings become log lines too."""
    config = logging_config(fmt, level, text_format=text_format)
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    return config
