"""Pure checks behind tests/integration/test_bad_input.py: the same corpus of bad records, parsed
without a broker, and the mail side's handling of awkward but schema-valid customers."""

from __future__ import annotations

import dataclasses
import email
import email.header
import json
import email.policy
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from domain.affected import CustomerIndex
from domain.audience import plan_round
from domain.incident import decide
from notifiers.message import MAX_LINE
from notifiers.notice import NoticeComposer
from schemas import Contact, Customer, IncidentEvent, RecordError, TicketEvent, parse_record
from schemas.limits import MAX_NAME_CHARS, MAX_TITLE_CHARS
from streams.deadletter import DeadLetters, record_key
from tests.integration.test_bad_input import (BAD, C_IDN, C_LONG, C_NAME_LIMIT, HUGE_VALUE, NAME_AT_LIMIT_EN,
                                              NAME_AT_LIMIT_JA, NEAR_LIMIT_VALUE)

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
MODELS = {"customers": Customer, "incident-events": IncidentEvent, "ticket-events": TicketEvent}
# rejected by the worker's rules on top of the schema (state, record key), not by parse_record alone
AGENT_LEVEL = {"customer-key-differs-from-customer_id", "incident-key-differs-from-incident_id",
               "ticket-key-differs-from-ticket_id", "customer-tombstone-with-empty-key", "customer-key-not-utf8",
               "incident-updated-for-unknown-incident", "ticket-for-unknown-customer",
               "customer-null-key", "incident-null-key", "ticket-null-key"}


@pytest.mark.parametrize("bad", [pytest.param(b, id=b.id) for b in BAD if b.id not in AGENT_LEVEL])
def test_parse_record_rejects_with_a_one_line_reason_naming_the_problem(bad):
    with pytest.raises(RecordError) as info:
        parse_record(MODELS[bad.topic], bad.value)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    for needle in bad.expect:
        assert needle.lower() in message.lower(), f"{needle!r} not in {message!r}"


@pytest.mark.parametrize("bad", [pytest.param(b, id=b.id) for b in BAD if b.id in AGENT_LEVEL and b.value])
def test_agent_level_cases_are_valid_records_on_their_own(bad):
    """These are refused for where they are (key, state), not for what they hold."""
    parse_record(MODELS[bad.topic], bad.value)


def test_the_size_limit_is_on_the_record_in_bytes():
    assert len(NEAR_LIMIT_VALUE) < 1_000_000 < len(HUGE_VALUE)
    assert parse_record(Customer, NEAR_LIMIT_VALUE).customer_id == "c-900k"


def compose_all(customer_record: dict | Customer, title="X", kinds=("acknowledged",)) -> dict[str, list[bytes]]:
    """The notices of a declared incident to each contact of the customer, composed as the worker
    does, for each of ``kinds`` (by kind). A ``Customer`` or a title given here skips validation,
    to compose what the schema would refuse (a defence in depth)."""
    c = customer_record if isinstance(customer_record, Customer) else Customer.model_validate(customer_record)
    component = c.services[0].component
    event = IncidentEvent.model_validate({
        "event_id": "e-1", "incident_id": "inc-1", "type": "declared", "at": T0.isoformat(),
        "severity": "major", "title": "X", "components": [component], "update_interval_seconds": 3600})
    rnd = decide(None, event.model_copy(update={"title": title}), T0).round
    index = CustomerIndex()
    index.put(c.customer_id, [(s.component, s.region) for s in c.services])
    jobs = list(plan_round(rnd, index, {c.customer_id: c}.get, lambda cid: None, [], "example.com"))
    composer = NoticeComposer(public_url="http://127.0.0.1:6066", mail_from="status@example.com",
                              signing_key=b"k")
    out: dict[str, list[bytes]] = {}
    for kind in kinds:
        ticket = dict(ticket_id="T-1", ticket_subject="503 " * 200) if kind == "ticket-ack" else {}
        out[kind] = [composer(dataclasses.replace(job, kind=kind, **ticket), T0) for job in jobs]
    return out


def compose(customer_record: dict) -> bytes:
    """The first notice of a declared incident to the customer's first contact, composed as the worker does."""
    return compose_all(customer_record)["acknowledged"][0]


def readable(data: bytes) -> email.message.EmailMessage:
    """The message, checked: 7-bit headers, lines of at most 998 octets, parsed without defects."""
    assert data.split(b"\r\n\r\n", 1)[0].isascii()
    assert all(len(line) <= MAX_LINE for line in data.split(b"\r\n"))
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert not msg.defects and len(msg.get_all("Subject")) == 1
    return msg


def rfc2047(data: bytes, name: str) -> str:
    raw = email.message_from_bytes(data, policy=email.policy.compat32)[name]
    return str(email.header.make_header(email.header.decode_header(raw))).replace("\r\n", "")


ALL_KINDS = ("acknowledged", "progress", "scheduled", "resolved", "unaffected", "ticket-ack")


def test_a_contact_with_an_idn_domain_can_be_composed():
    data = compose(C_IDN)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["To"].addresses[0].domain in ("bücher.example", "xn--bcher-kva.example")


def test_the_longest_valid_customer_id_can_be_composed():
    longest = {**C_LONG, "customer_id": "顧" * 85}  # 255 bytes of UTF-8: just within the 256-byte limit
    data = compose(longest)
    assert all(len(line) <= MAX_LINE for line in data.split(b"\r\n"))


def test_a_customer_id_over_256_bytes_is_invalid_input():
    with pytest.raises(RecordError, match="customer_id.*256 bytes"):
        parse_record(Customer, json.dumps(C_LONG))


# --- length limits and the mail side ------------------------------------------------------------

TITLE_AT_LIMIT = {"en": ("Billing API errors in Tokyo " * 10)[:MAX_TITLE_CHARS],
                  "ja": ("東京リージョンの請求APIでエラーが発生しています" * 10)[:MAX_TITLE_CHARS]}


@pytest.mark.parametrize("locale", ["en", "ja"])
def test_a_title_at_the_limit_makes_every_kind_of_notice_with_a_readable_subject(locale):
    record = {**C_NAME_LIMIT, "locale": locale}
    notices = compose_all(record, title=TITLE_AT_LIMIT, kinds=ALL_KINDS)
    for kind, messages in notices.items():
        assert len(messages) == 2, kind
        for data in messages:
            msg = readable(data)
            assert TITLE_AT_LIMIT[locale].strip() in msg["Subject"], kind
            assert TITLE_AT_LIMIT[locale].strip() in rfc2047(data, "Subject"), kind


@pytest.mark.parametrize("locale", ["en", "ja"])
@pytest.mark.parametrize("title", ["t" * 2_000, " ".join(["word"] * 1_000), "障" * 2_000,
                                   {"en": "x" * 5_000, "ja": "エラー" * 2_000}])
def test_even_a_title_beyond_the_limit_cannot_make_a_notice_impossible_to_compose(title, locale):
    """The schema refuses these; should one get past it, every notice is still composed (the
    2,000-character English title of issue 9 made every notice of its incident fail)."""
    for messages in compose_all({**C_NAME_LIMIT, "locale": locale}, title=title, kinds=ALL_KINDS).values():
        for data in messages:
            subject = readable(data)["Subject"]
            expected = title if isinstance(title, str) else title[locale]
            assert expected in subject


def test_contact_names_at_the_limit_are_in_to_and_read_back():
    [en, ja] = compose_all(C_NAME_LIMIT)["acknowledged"]
    to = readable(en)["To"].addresses[0]
    assert (to.display_name, to.addr_spec) == (NAME_AT_LIMIT_EN, "en@namelimit.example.jp")
    readable(ja)
    assert rfc2047(ja, "To") == f"{NAME_AT_LIMIT_JA} <ja@namelimit.example.jp>"


@pytest.mark.parametrize("name", ["N" * 1_000, "佐藤" * 500, 'a "quoted", <odd> (name) ' * 40])
def test_even_a_contact_name_beyond_the_limit_is_composed(name):
    customer = Customer.model_validate(C_NAME_LIMIT)
    customer = customer.model_copy(update={"contacts": [Contact.model_construct(email="x@namelimit.example.jp",
                                                                                name=name)]})
    [data] = compose_all(customer)["acknowledged"]
    to = readable(data)["To"].addresses[0]
    assert to.addr_spec == "x@namelimit.example.jp"
    if "=?" in email.message_from_bytes(data, policy=email.policy.compat32)["To"]:
        # encoded words (a word too long for a line, or non-ASCII): RFC 2047 decoding gives the name back
        # (the modern parser would read a space between adjacent encoded words: CPython gh-128110)
        assert rfc2047(data, "To") == f"{name.strip()} <x@namelimit.example.jp>"
    else:   # folded at its spaces, quoted: the modern parser reads it back
        assert to.display_name == name.strip()


def test_the_limits_are_the_schemas_and_over_them_is_a_record_error():
    over = {**C_NAME_LIMIT, "contacts": [{"email": "x@namelimit.example.jp", "name": "N" * (MAX_NAME_CHARS + 1)}]}
    with pytest.raises(RecordError) as info:
        parse_record(Customer, json.dumps(over))
    assert info.value.field == "contacts.0.name"
    parse_record(Customer, json.dumps(C_NAME_LIMIT))


# --- null keys on keyed topics ------------------------------------------------------------------


def event(topic: str, key: bytes | None, value: bytes | None = b"{}"):
    """A stand-in for a faust event: what record_key and the dead-letter guard read."""
    return SimpleNamespace(key=key, value=value,
                           message=SimpleNamespace(topic=f"outage.{topic}", partition=1, offset=7))


@pytest.mark.parametrize("topic,field", [("customers", "customer_id"), ("incident-events", "incident_id"),
                                         ("ticket-events", "ticket_id")])
def test_a_null_key_on_a_keyed_topic_is_a_record_error_naming_the_id(topic, field):
    with pytest.raises(RecordError) as info:
        record_key(event(topic, None))
    assert info.value.field == "key"
    assert str(info.value) == f"key: the record has no key; the key must be the {field}"


def test_a_tombstone_needs_a_key_too():
    with pytest.raises(RecordError, match="the tombstone has no key; the key must be the customer_id"):
        record_key(event("customers", None, value=None))


def test_a_key_is_returned_as_text_and_may_be_optional():
    assert record_key(event("customers", "顧客-1".encode())) == "顧客-1"
    assert record_key(event("customers", b"")) == ""   # empty: the agents say it differs from the id
    assert record_key(event("notices", None), required=False) is None
    with pytest.raises(RecordError, match="not valid UTF-8"):
        record_key(event("customers", b"c-\xff"))


async def test_the_guard_dead_letters_a_null_key_with_the_reason():
    sent = []

    class Topic:
        async def send(self, *, key, value):
            sent.append((key, json.loads(value)))

    dlq = DeadLetters(Topic(), clock=lambda: T0)
    ev = event("incident-events", None, value=b'{"incident_id": "inc-1"}')
    async with dlq.guard(ev, "incident-events"):
        record_key(ev)
        raise AssertionError("not reached: the key is required")
    [(key, letter)] = sent
    assert key is None and letter["key"] is None
    assert letter["topic"] == "outage.incident-events" and (letter["partition"], letter["offset"]) == (1, 7)
    assert letter["value"] == '{"incident_id": "inc-1"}'
    assert letter["error"] == "key: the record has no key; the key must be the incident_id"


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("argv,field", [
    (["incident", "declare", "--title", "t" * 2_000, "--severity", "major", "--components", "api"], "title"),
    (["incident", "declare", "--title", "API", "--title-ja", "障" * 201, "--severity", "major",
      "--components", "api"], "title"),
    (["incident", "update", "inc-1", "--message", "m" * 5_001], "message"),
    (["ticket", "open", "T-1", "--customer", "c-1", "--subject", "s" * 501, "--requester", "dev@example.jp"],
     "subject"),
    (["ticket", "open", "T-1", "--customer", "c-1", "--subject", "503", "--requester", "dev@example.jp",
      "--requester-name", "R" * 1_000], "requester.name"),
])
def test_the_cli_refuses_over_long_texts_with_exit_2_and_one_line(argv, field, monkeypatch, capsys):
    from outage.cli import main

    monkeypatch.delenv("OUTAGE_BROKER", raising=False)   # validation comes first: no broker is needed
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{field}: too long" in err, err


@pytest.mark.parametrize("argv,field", [
    (["incident", "declare", "--title", "API", "--severity", "major", "--components", "api",
      "--eta", "2020-01-01T00:00:00Z"], "eta"),
    (["incident", "update", "inc-1", "--status", "identified", "--eta", "2020-01-01T09:00:00+09:00"], "eta"),
    (["incident", "update", "inc-1", "--next-update-at", "2020-01-01T00:00:00Z"], "next_update_at"),
])
def test_the_cli_refuses_a_promise_already_past_with_exit_2_and_one_line(argv, field, monkeypatch, capsys):
    from outage.cli import main

    monkeypatch.delenv("OUTAGE_BROKER", raising=False)   # validation comes first: no broker is needed
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("outage: ") and f"{field}: must be later than" in err, err


def test_the_cli_measures_a_files_estimate_against_the_files_at(tmp_path, monkeypatch, capsys):
    from outage.cli import main

    monkeypatch.delenv("OUTAGE_BROKER", raising=False)
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"at": "2026-11-25T10:00:00+09:00", "eta": "2026-11-25T10:00:00+09:00"}))
    assert main(["incident", "update", "inc-1", "--file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "eta: must be later than the event's time (2026-11-25T01:00:00Z)" in err, err


def test_the_cli_rejects_a_customer_row_with_a_contact_name_over_the_limit(tmp_path, monkeypatch, capsys):
    """The import streams: the row goes to the rejects file with its reason, the others are imported."""
    import streams.client
    from outage.cli import main

    sent = []

    class Sink:
        def __init__(self, settings) -> None:
            pass

        def send(self, key, value) -> None:
            sent.append(key)

        def finish(self) -> None:
            pass

    monkeypatch.setenv("OUTAGE_BROKER", "127.0.0.1:9092")
    monkeypatch.setattr(streams.client, "KafkaSink", Sink)
    path = tmp_path / "customers.jsonl"
    over = {**C_NAME_LIMIT, "contacts": [{"email": "x@namelimit.example.jp", "name": "N" * 1_000}]}
    path.write_text(json.dumps(C_NAME_LIMIT, ensure_ascii=False) + "\n" + json.dumps(over) + "\n", encoding="utf-8")
    assert main(["customers", "import", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "imported 1, rejected 1" and err.count("\n") == 1, err
    (reject,) = [json.loads(line) for line in (tmp_path / "customers.jsonl.rejects.jsonl").read_text().splitlines()]
    assert reject["line"] == 2 and "contacts.0.name: too long" in reject["error"], reject
    assert sent == [C_NAME_LIMIT["customer_id"].encode()]


@pytest.mark.parametrize("content,says", [
    (None, "No such file"), ("{not json", "not JSON"), ("[1, 2]", "a JSON object"), (b"\xff\xfe{}", "not JSON"),
])
def test_the_cli_refuses_an_event_file_it_cannot_read_with_exit_2_and_one_line(content, says, tmp_path, monkeypatch,
                                                                                 capsys):
    from outage.cli import main

    monkeypatch.delenv("OUTAGE_BROKER", raising=False)
    path = tmp_path / "event.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["incident", "update", "inc-1", "--file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and str(path) in err, err


def test_a_worker_without_a_broker_says_so_in_one_line_with_exit_2(monkeypatch, capsys):
    from outage.cli import main

    monkeypatch.delenv("OUTAGE_BROKER", raising=False)
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "OUTAGE_BROKER is not set" in err, err


def test_the_cli_says_its_version_with_exit_0(capsys):
    from importlib.metadata import version

    from outage.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"outage {version('outage-pipeline')}\n"
