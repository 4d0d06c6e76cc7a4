"""The ``outage`` command: dev, worker, customers import, incident declare|update|resolve|list|show,
ticket open|close, maintenance schedule|update|cancel|complete|list (outage/maintenance_cli.py), schemas export. Records are validated with ``schemas`` before they are produced."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from core.settings import SecretsDirMissing, Settings
from core.vocabulary import OPEN_STATUSES, SEVERITIES
from outage.event_input import add_scope_flags, add_text_flags, add_title_flags, event_data, event_fields
from streams.client import ClientError as CliError
from streams.client import fold_topic, import_customers, produce, validate


def _now() -> datetime:
    return datetime.now(timezone.utc)


# -- incidents --------------------------------------------------------------------------------
def _incident_fields(args, declared: bool) -> dict:
    data = event_fields(args)
    for name in ("severity", "status", "eta", "next_update_at"):
        value = getattr(args, name, None)
        if value is not None:
            data[name] = None if value == "none" else value
    if getattr(args, "interval", None) is not None:
        data["update_interval_seconds"] = args.interval
    return data


def _incident_event(event_type: str, incident_id: str | None, fields: dict):
    """The event the command produces, validated (exit 2 naming the field). A ``--file`` may name
    the incident and the type only as the command does (``outage incident update inc-7`` with a
    file of ``inc-8``'s fields is a mistake, not a choice)."""
    from schemas import IncidentEvent

    data = event_data(event_type, "incident_id", incident_id, fields, id_prefix="inc", now=_now())
    return validate(IncidentEvent, data, f"{event_type} event")


def _check_incident(settings: Settings, event) -> None:
    """What the API checks before it produces: an update or a resolve names a known incident that
    is not resolved, a declare with an id names a new one. The command produces straight to the
    topic, so it asks the topic: the incidents folded from ``incident-events`` (``read_incidents``,
    the domain's own rules), as any worker sees them once it has caught up."""
    states = read_incidents(settings)
    state = states.get(event.incident_id)
    if event.type == "declared":
        if state is not None:
            raise CliError(f"incident {event.incident_id} already exists")
    elif state is None:
        raise CliError(f"unknown incident {event.incident_id}")
    elif state.resolved:
        raise CliError(f"incident {event.incident_id} is resolved")


def _produce_incident_event(settings: Settings, event) -> dict:
    from streams.topics import INCIDENT_EVENTS

    produce(settings, INCIDENT_EVENTS, [(event.incident_id, event.model_dump_json().encode())])
    return json.loads(event.model_dump_json())


def read_incidents(settings: Settings) -> dict:
    """Fold the incident-events topic through the domain rules: the incidents as workers see them."""
    from domain.incident import decide
    from schemas import IncidentEvent
    from streams.topics import INCIDENT_EVENTS

    def step(state, event):
        decision = decide(state, event, event.at)
        return decision.state if decision.round is not None else None

    return fold_topic(settings, INCIDENT_EVENTS, IncidentEvent, lambda event: event.incident_id, step)


def _show(state) -> dict:
    return {"incident_id": state.incident_id, "status": state.status, "severity": state.severity,
            "title": state.title, "components": state.components, "regions": state.regions,
            "started_at": state.started_at.isoformat(),
            "resolved_at": state.resolved_at.isoformat() if state.resolved_at else None,
            "eta": state.eta.isoformat() if state.eta else None, "rounds": state.seq,
            "history": state.history}


# -- tickets ----------------------------------------------------------------------------------
def _send_ticket_event(settings: Settings, args, event_type: str) -> dict:
    from schemas import TicketEvent
    from streams.topics import TICKET_EVENTS

    data = {"event_id": f"cli-{uuid.uuid4().hex[:12]}", "ticket_id": args.ticket_id,
            "customer_id": args.customer, "type": event_type, "at": _now().isoformat()}
    if event_type == "opened":
        data["subject"] = args.subject
        data["requester"] = {"email": args.requester, "name": args.requester_name}
        if args.components:
            data["components"] = [c.strip() for c in args.components.split(",") if c.strip()]
    event = validate(TicketEvent, data, f"ticket {event_type} event")
    produce(settings, TICKET_EVENTS, [(event.ticket_id, event.model_dump_json().encode())])
    return json.loads(event.model_dump_json())


# -- the parser -------------------------------------------------------------------------------
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("outage-pipeline")
    except PackageNotFoundError:   # run from a source tree that was never installed: its pyproject.toml
        import tomllib

        try:
            with open(Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as f:
                return tomllib.load(f)["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``outage: <problem> (see: <command> --help)``)
    and exit status 2, as every other failure of the command."""

    def error(self, message: str):
        self.exit(2, f"outage: {message} (see: {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="outage", description="Outage communication pipeline.")
    p.add_argument("--version", action="version", version=f"outage {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser("dev", help="run everything locally: broker, SMTP capture, sample customers, worker")
    dev.add_argument("--no-sample", action="store_true", help="do not load the sample customers")
    dev.add_argument("--workers", type=int, default=1, metavar="N",
                     help="worker processes to start (each on the next web port; default 1)")
    dev.add_argument("--broker", choices=["embedded", "kafka"], default="embedded", dest="dev_broker",
                     help="the local broker: the embedded one (default, memory only) or Apache Kafka "
                          "from its jars (fetched with mvn once; needs Java 17); ignored when "
                          "OUTAGE_BROKER is set")
    dev.add_argument("--kafka-nodes", type=int, choices=[1, 3], default=1, metavar="{1,3}",
                     help="nodes of the local Apache Kafka (default 1)")

    worker = sub.add_parser("worker", help="run one stream-processing worker")
    worker.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])

    customers = sub.add_parser("customers", help="customer records").add_subparsers(dest="action", required=True)
    imp = customers.add_parser(
        "import", help="produce customers from a JSON-lines or CSV file",
        description="Produce customers from a JSON-lines or CSV file, streaming. Rows that are not valid "
                    "customers are written with their reasons to the rejects file and the import goes on; it "
                    "ends with 'imported N, rejected M' (exit 2 when a row was rejected). CSV columns: "
                    "customer_id, name, locale, timezone, tier, contacts (an address list: "
                    "'Sato <ops@example.jp>, dev@example.jp'), services ('api@ap-northeast-1;web@eu-west-1').")
    imp.add_argument("file", type=Path)
    imp.add_argument("--rejects", type=Path, metavar="FILE",
                     help="where rejected rows go, with their reasons, one JSON object a line "
                          "(default: FILE.rejects.jsonl beside the input)")
    imp.add_argument("--format", choices=["jsonl", "csv"], dest="fmt",
                     help="the file's format (default: csv for a .csv file, else JSON lines)")

    incident = sub.add_parser("incident", help="declare, update, resolve, list and show incidents")
    isub = incident.add_subparsers(dest="action", required=True)

    def common(sp, declared: bool):
        add_text_flags(sp, "latest message")
        if declared is not None:
            add_title_flags(sp)
            sp.add_argument("--severity", choices=SEVERITIES)
            sp.add_argument("--status", choices=OPEN_STATUSES)
            add_scope_flags(sp)
            sp.add_argument("--eta", help="recovery estimate, RFC 3339 with offset ('none' clears it)")
            sp.add_argument("--next-update-at", dest="next_update_at", help="promised next update, RFC 3339")
            sp.add_argument("--interval", type=int, help="seconds between updates (default by severity)")

    d = isub.add_parser("declare", help="declare an incident")
    d.add_argument("--id", dest="incident_id", help="incident id (generated when absent)")
    common(d, True)
    u = isub.add_parser("update", help="post an update to an incident")
    u.add_argument("incident_id")
    common(u, False)
    r = isub.add_parser("resolve", help="resolve an incident")
    r.add_argument("incident_id")
    common(r, None)
    isub.add_parser("list", help="list incidents")
    s = isub.add_parser("show", help="show one incident with its history")
    s.add_argument("incident_id")

    ticket = sub.add_parser("ticket", help="support-ticket events").add_subparsers(dest="action", required=True)
    to = ticket.add_parser("open", help="a customer opened a ticket")
    to.add_argument("ticket_id")
    to.add_argument("--customer", required=True, help="customer_id")
    to.add_argument("--subject", required=True)
    to.add_argument("--requester", required=True, help="requester email")
    to.add_argument("--requester-name")
    to.add_argument("--components", help="comma-separated components the ticket is about")
    tc = ticket.add_parser("close", help="a ticket was closed")
    tc.add_argument("ticket_id")
    tc.add_argument("--customer", required=True, help="customer_id")

    from outage.maintenance_cli import add_parser as add_maintenance
    add_maintenance(sub)   # outage maintenance schedule|update|cancel|complete|list

    schemas = sub.add_parser("schemas", help="record schemas").add_subparsers(dest="action", required=True)
    ex = schemas.add_parser("export", help="write a JSON Schema file per record")
    ex.add_argument("directory", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValidationError as exc:
        from schemas import describe_validation_error
        print(f"outage: invalid settings: {describe_validation_error(exc)}", file=sys.stderr)
        return 2
    except SecretsDirMissing as exc:
        print(f"outage: invalid settings: {exc}", file=sys.stderr)
        return 2
    quiet = _quiet_libraries() if args.command not in ("dev", "worker") else contextlib.nullcontext()
    try:
        with quiet:
            return _run(args, settings)
    except CliError as exc:
        print(f"outage: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - never a traceback at the terminal: one line, exit 2
        print(f"outage: {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr)
        return 2


def _one_line(text: str) -> str:
    return " ".join(text.split())


@contextlib.contextmanager
def _quiet_libraries():
    """A command at a terminal says one line when it fails: the libraries' own log lines (the
    Kafka client's connection errors, the admin's "waiting" notes) are not printed while it runs."""
    import logging

    root, null = logging.getLogger(), logging.NullHandler()
    level = root.level
    root.addHandler(null)
    root.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        root.removeHandler(null)
        root.setLevel(level)


def _print(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _run(args, settings: Settings) -> int:
    if args.command == "dev":
        try:
            from devtools.dev import run_dev
        except ImportError as exc:  # installed without the development tools
            raise CliError(f"outage dev needs the development tools ({exc.name} is missing): "
                           "pip install 'outage-pipeline[dev]'") from None
        if not 1 <= args.workers <= 16:
            raise CliError("--workers: from 1 to 16")
        return run_dev(settings, sample=not args.no_sample, workers=args.workers,
                       kafka_nodes=args.kafka_nodes if args.dev_broker == "kafka" else 0)
    if args.command == "worker":
        from streams.kafka.broker import BrokerRefused
        from streams.worker import run_worker
        if not settings.broker:
            raise CliError("OUTAGE_BROKER is not set: the worker needs the broker's host:port "
                           "(outage dev starts a broker and its workers for development)")
        try:
            run_worker(settings, loglevel=args.loglevel)
        except BrokerRefused as exc:   # wrong credentials, an untrusted certificate: retrying cannot help
            raise CliError(str(exc)) from None
        return 0
    if args.command == "customers":
        result = import_customers(settings, args.file, fmt=args.fmt, rejects=args.rejects)
        print(result.summary())
        if result.rejected:
            rows = "1 row" if result.rejected == 1 else f"{result.rejected} rows"
            raise CliError(f"{rows} rejected, each with its reason in {result.rejects_path}")
        return 0
    if args.command == "incident":
        if args.action in ("declare", "update", "resolve"):
            event_type = {"declare": "declared", "update": "updated", "resolve": "resolved"}[args.action]
            fields = _incident_fields(args, event_type == "declared")
            named = args.incident_id is not None or fields.get("incident_id") is not None
            event = _incident_event(event_type, args.incident_id, fields)
            if named:   # a generated id is new: nothing to check
                _check_incident(settings, event)
            _print(_produce_incident_event(settings, event))
        elif args.action == "list":
            states = read_incidents(settings)
            for st in sorted(states.values(), key=lambda s: s.started_at):
                from schemas.common import localize
                print(f"{st.incident_id}\t{st.status}\t{st.severity}\t{localize(st.title, 'en')}")
        elif args.action == "show":
            state = read_incidents(settings).get(args.incident_id)
            if state is None:
                raise CliError(f"unknown incident {args.incident_id}")
            _print(_show(state))
        return 0
    if args.command == "ticket":
        _print(_send_ticket_event(settings, args, "opened" if args.action == "open" else "closed"))
        return 0
    if args.command == "maintenance":
        from outage.maintenance_cli import run as run_maintenance
        return run_maintenance(args, settings, _print)
    if args.command == "schemas":
        from schemas import export_json_schemas
        for path in export_json_schemas(args.directory):
            print(path)
        return 0
    raise CliError(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
