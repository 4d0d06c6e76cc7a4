"""``outage customers import FILE``: customers from a JSON-lines or CSV file onto the customers topic.

It streams: one row is read, validated and handed to the producer at a time, so memory stays
constant whatever the file's size (bench row ``import-1m``: a million rows). Each row is judged
by the customers topic's own model (``schemas/customer.py``; ``parse_customer`` is its fast
path, the same judgement); a row it refuses is written, with the reason, to the rejects file
and the import goes on. The producer batches (``linger_ms``) and is flushed once, at the end.

Formats (by the file's suffix, or ``--format``):

* JSON lines (``.jsonl``, ``.ndjson``, ``.json``, anything not ``.csv``): one customer record a
  line, exactly as on the topic; blank lines are skipped.
* CSV (``.csv``), read with the ``csv`` module (quoted fields, commas and line breaks inside
  quotes), UTF-8 with or without a byte-order mark. A header row names the columns:
  ``customer_id`` and ``name`` are required; ``locale``, ``timezone``, ``tier``, ``contacts``,
  ``services`` optional; any other column is refused before a row is read. An empty cell is
  absent. ``contacts`` is an address list as in a ``To`` header, read with
  ``email.utils.getaddresses``: ``Sato <ops@example.jp>, dev@example.jp``, a name with a comma
  in double quotes (``"Sato, Taro" <sato@example.jp>``); ``;`` separates too. ``services`` is
  ``component@region`` items separated by ``;``, ``,`` or whitespace.

The rejects file (default: ``FILE.rejects.jsonl`` beside the input, made only when a row is
rejected) has one JSON object a line: ``line`` (where the row starts in the input), ``error``
(one line naming the field) and ``row`` (the line's text, or the CSV row's cells).
"""

from __future__ import annotations

import csv
import json
import re
import sys
import time
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import Callable, Iterator, Protocol, TextIO

import pydantic

from schemas import Customer, RecordError, describe_validation_error
from schemas.customer import parse_customer, plain_customer

CSV_COLUMNS = ("customer_id", "name", "locale", "timezone", "tier", "contacts", "services")
CSV_REQUIRED = ("customer_id", "name")
FORMATS = ("jsonl", "csv")
PROGRESS_EVERY_SECONDS = 0.25


class ImportFailed(Exception):
    """The import cannot go on (unreadable file, bad CSV header, broker): one line."""


class Sink(Protocol):
    """Where accepted customers go: the producer (``streams/client.py``) or a test's list."""

    def send(self, key: bytes, value: bytes) -> None: ...

    def finish(self) -> None: ...   # flush once; raise ImportFailed when records were not delivered


@dataclass
class Row:
    line: int                  # where the row starts in the file (1-based)
    raw: str | dict            # the line's text, or the CSV row's cells (for the rejects file)
    customer: tuple[str, bytes] | None = None   # (customer_id, the record's JSON) when valid
    error: str | None = None


@dataclass
class ImportResult:
    imported: int
    rejected: int
    rejects_path: Path | None   # None when no row was rejected

    def summary(self) -> str:
        return f"imported {self.imported}, rejected {self.rejected}"


def file_format(path: Path, given: str | None = None) -> str:
    return given or ("csv" if path.suffix.lower() == ".csv" else "jsonl")


def default_rejects_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejects.jsonl")


# -- reading ----------------------------------------------------------------------------------
def jsonl_rows(path: Path) -> Iterator[Row]:
    with _open(path, binary=True) as f:
        for n, raw in enumerate(f, start=1):
            if n == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if not raw.strip():
                continue
            raw = raw.rstrip(b"\r\n")
            text = raw.decode("utf-8", "replace")
            try:
                cid, value, _ = parse_customer(raw)
            except RecordError as exc:
                yield Row(n, text, error=str(exc))
            else:
                yield Row(n, text, customer=(cid, value))


def csv_rows(path: Path) -> Iterator[Row]:
    with _open(path, binary=False) as f:
        reader = csv.DictReader(f, strict=True)
        try:
            header = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ImportFailed(f"{path}:1: cannot read the CSV header ({_reason(exc)})") from None
        if not header:
            return
        unknown = [c for c in header if c not in CSV_COLUMNS]
        if unknown:
            raise ImportFailed(f"{path}: unknown column {unknown[0]!r} (the columns: {', '.join(CSV_COLUMNS)})")
        missing = [c for c in CSV_REQUIRED if c not in header]
        if missing:
            raise ImportFailed(f"{path}: the header has no {missing[0]!r} column")
        if len(set(header)) < len(header):
            raise ImportFailed(f"{path}: a column appears twice in the header")
        start = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                raise ImportFailed(f"{path}:{start}: malformed CSV ({_reason(exc)})") from None
            line, start = start, reader.line_num + 1
            if not any((v or "").strip() for k, v in cells.items() if k is not None):
                continue
            raw = {k: v for k, v in cells.items() if k is not None}
            if None in cells:
                yield Row(line, raw, error=f"the row has {len(header) + len(cells[None])} cells; "
                                            f"the header names {len(header)}")
                continue
            try:
                yield Row(line, raw, customer=_validated(customer_from_cells(raw)))
            except (RecordError, ValueError) as exc:
                yield Row(line, raw, error=str(exc))


def _open(path: Path, binary: bool):
    try:
        if binary:
            return open(path, "rb")
        return open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise ImportFailed(f"{path}: no such file") from None
    except OSError as exc:
        raise ImportFailed(f"{path}: {exc.strerror or exc}") from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8"
    return str(exc)


def _validated(data: dict) -> tuple[str, bytes]:
    plain = plain_customer(data)
    if plain is not None:
        return plain[0], plain[1]
    try:
        customer = Customer.model_validate(data)
    except pydantic.ValidationError as exc:
        raise RecordError(describe_validation_error(exc)) from None
    return customer.customer_id, customer.model_dump_json().encode()


_SERVICE_SEPARATORS = re.compile(r"[;,\s]+")


def customer_from_cells(cells: dict[str, str | None]) -> dict:
    """The customer record of one CSV row (see the module docstring); ``ValueError`` naming the
    column when a cell cannot be read."""
    data: dict = {}
    for column in ("customer_id", "name", "locale", "timezone", "tier"):
        value = cells.get(column)
        if value is not None and value.strip():
            data[column] = value.strip() if column != "name" else value
    contacts = []
    text = cells.get("contacts") or ""
    if text.strip():
        for name, address in getaddresses([text]):
            if not address and not name:
                continue
            if not address or "@" not in address:
                raise ValueError(f"contacts: not an address list (Name <addr>, addr, ...): {text!r}")
            contacts.append({"email": address} if not name else {"email": address, "name": name})
    data["contacts"] = contacts
    services = []
    for item in _SERVICE_SEPARATORS.split(cells.get("services") or ""):
        if not item:
            continue
        component, sep, region = item.rpartition("@")
        if not sep or not component or not region:
            raise ValueError(f"services: {item!r} is not component@region")
        services.append({"component": component, "region": region})
    data["services"] = services
    return data


# -- the import -------------------------------------------------------------------------------
class Progress:
    """A one-line counter on stderr, redrawn at most four times a second, only on a terminal."""

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.on = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.started = self.last = clock()
        self.drawn = False

    def update(self, imported: int, rejected: int, force: bool = False) -> None:
        if not self.on:
            return
        now = self.clock()
        if not force and now - self.last < PROGRESS_EVERY_SECONDS:
            return
        self.last = now
        rate = (imported + rejected) / max(now - self.started, 1e-9)
        self.stream.write(f"\r{imported:,} imported, {rejected:,} rejected ({rate:,.0f} rows/s)")
        self.stream.flush()
        self.drawn = True

    def done(self) -> None:
        if self.on and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


class Rejects:
    """The rejects file, opened at the first rejected row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = None
        self.count = 0

    def write(self, row: Row) -> None:
        if self.file is None:
            try:
                self.file = open(self.path, "w", encoding="utf-8")
            except OSError as exc:
                raise ImportFailed(f"the rejects file {self.path}: {exc.strerror or exc}") from None
        self.file.write(json.dumps({"line": row.line, "error": row.error, "row": row.raw}, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def check_file(path: Path, fmt: str | None = None) -> None:
    """Fail early, before any broker is asked: the file opens, and a CSV file's header is right
    (its checks run before the first row is read)."""
    if file_format(path, fmt) == "csv":
        rows = csv_rows(path)
        try:
            next(rows, None)
        finally:
            rows.close()
    else:
        _open(path, binary=True).close()


def import_file(path: Path, sink: Sink, *, fmt: str | None = None, rejects_path: Path | None = None,
                progress: Progress | None = None) -> ImportResult:
    """Read ``path`` row by row, hand every valid customer to ``sink``, write every rejected row
    with its reason to the rejects file; flush ``sink`` once at the end."""
    rows = csv_rows(path) if file_format(path, fmt) == "csv" else jsonl_rows(path)
    rejects = Rejects(rejects_path or default_rejects_path(path))
    progress = progress or Progress()
    imported = 0
    try:
        try:
            for row in rows:
                if row.customer is None:
                    rejects.write(row)
                else:
                    cid, value = row.customer
                    sink.send(cid.encode(), value)
                    imported += 1
                progress.update(imported, rejects.count)
        except ImportFailed as exc:   # e.g. a malformed CSV record halfway: what came before it goes out
            sink.finish()
            raise ImportFailed(f"{exc}; the {imported} customers before it were imported") from None
        progress.update(imported, rejects.count, force=True)
        sink.finish()
    finally:
        rejects.close()
        progress.done()
    return ImportResult(imported, rejects.count, rejects.path if rejects.count else None)
