"""The customers reader's record judgement and its on-disk partition (streams/customers.py)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from domain.affected import Scope
from streams.customers import CUSTOMER, SERVICES, CustomerStore, Partition, check, decode_services, encode_services
from streams.views import customer_of_json


def _customer(cid: str = "c-1", **extra) -> dict:
    return {"customer_id": cid, "name": "Example KK", "locale": "JA", "timezone": "Asia/Tokyo",
            "contacts": [{"email": "Ops@Example.JP", "name": "Sato"}, {"email": "ops@example.jp"}],
            "services": [{"component": "api", "region": "ap-northeast-1"},
                         {"component": "api", "region": "ap-northeast-1"}], **extra}


def test_a_valid_record_is_stored_normalised_with_its_services():
    what, cid, record, services_bytes = check(b"c-1", json.dumps(_customer()).encode())
    assert (what, cid) == ("put", "c-1")
    back = customer_of_json(record)
    assert back.locale == "ja" and [c.email for c in back.contacts] == ["Ops@example.jp"]
    assert decode_services(services_bytes) == [("api", "ap-northeast-1")]


def test_bad_records_are_judged_with_the_reason():
    assert check(b"c-2", json.dumps(_customer("c-1")).encode()) == \
        ("bad", "customer_id: record key 'c-2' differs from customer_id")
    assert check(None, json.dumps(_customer()).encode())[1].startswith("key: the record has no key")
    assert check(None, None)[1].startswith("key: the tombstone has no key")
    assert check(b"\xff", b"{}")[1] == "key: the record key is not valid UTF-8"
    what, reason = check(b"c-1", json.dumps(_customer(timezone="Mars/Olympus")).encode())
    assert what == "bad" and "timezone" in reason
    assert check(b"c-1", b'{"customer_id": "c-1", "name": ')[0] == "bad"
    assert check(b"c-1", None) == ("del", "c-1")


def test_services_round_trip_and_empty():
    pairs = [("api", "eu-west-1"), ("db", "ap-northeast-1")]
    assert decode_services(encode_services(pairs)) == pairs
    assert decode_services(encode_services([])) == [] and decode_services(None) == []


def _record(offset: int, key: bytes | None, value: bytes | None):
    return SimpleNamespace(offset=offset, key=key, value=value, partition=0)


def test_a_partition_applies_puts_replacements_deletes_and_dead_letters_then_reopens_from_disk(tmp_path):
    letters = []

    async def dead_letter(**kwargs):
        letters.append(kwargs)

    async def run():
        store = CustomerStore(bootstrap_servers=[], topic="t.customers", state_dir=tmp_path, dead_letter=dead_letter,
                              end_offsets=None)
        part = store._parts[0] = Partition(0, tmp_path / "customers-0.db")
        records = [
            _record(0, b"a", json.dumps(_customer("a")).encode()),
            _record(1, b"b", json.dumps(_customer("b")).encode()),
            _record(2, b"a", json.dumps(_customer("a", services=[{"component": "db", "region": "eu-west-1"}])).encode()),
            _record(3, b"b", None),
            _record(4, b"x", b"not json"),
        ]
        await store._apply(part, records, [check(r.key, r.value) for r in records])
        assert part.position == 5
        assert sorted(part.index.affected(Scope.of(["db"]))) == ["a"]
        assert not part.index.affected(Scope.of(["api"]))
        assert store.lookup(0, "a").services[0].component == "db" and store.lookup(0, "b") is None
        assert [(d["offset"], d["key"]) for d in letters] == [(4, "x")]
        # a record already applied (a fetch from before a seek) is skipped
        await store._apply(part, records[:1], [check(records[0].key, records[0].value)])
        assert store.lookup(0, "a").services[0].component == "db"
        part.close()
        again = Partition(0, tmp_path / "customers-0.db")
        assert again.position == 5 and await again.build_index() == 1 and "a" in again.index
        assert again.db.get(CUSTOMER + b"b") is None and again.db.get(SERVICES + b"b") is None
        again.close()

    asyncio.run(run())


# -- the short way of validating (schemas/customer.py parse_customer, schemas/common.py _plain_email)
# must judge every record as the model does: the same result, or the same error text.

import email_validator  # noqa: E402
import unicodedata  # noqa: E402

from devtools.sample import generate_customers  # noqa: E402
from schemas import Customer, RecordError, parse_record  # noqa: E402
from schemas.common import _plain_email, validate_email  # noqa: E402
from schemas.customer import parse_customer, plain_customer  # noqa: E402


def _library_email(value):
    """What schemas.validate_email answered before it had a short way."""
    try:
        result = email_validator.validate_email(value.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        return f"error: invalid email address ({exc})"
    if result.ascii_email is None:
        return "error: addresses with non-ASCII characters before the @ are not supported"
    return result.ascii_email


def _ours_email(value):
    try:
        return validate_email(value)
    except ValueError as exc:
        return f"error: {exc}"


ADDRESSES = [
    "ops@example.jp", "Ops@Example.JP", " ops@example.jp ", "POSTMASTER@example.com", "Info@Example.com",
    "info.x@example.com", "a.b.c+tag@sub.example.co.jp", "x_y-z!#$%&'*+/=?^`{|}~@example.org",
    "a..b@example.com", ".a@example.com", "a.@example.com", "a@example", "a@localhost", "a@example.invalid",
    "a@x.local", "a@example.com.", "a@.example.com", "a@example..com", "a@-example.com", "a@example-.com",
    "a@123.com", "a@1.2.3.4", "a@[1.2.3.4]", "a@@example.com", "a@b@example.com", "@example.com", "a@",
    "a@xn--bcher-kva.example", "a@XN--BCHER-KVA.example", "a@xn--zz.example", "a@bücher.example",
    "ü@example.com", '"quoted"@example.com', '"a b"@example.com', "Name <a@example.com>", "a b@example.com",
    "a@exa_mple.com", "a@" + "x" * 64 + ".com", "a@" + ".".join(["x" * 63] * 4) + ".com",
    "x" * 64 + "@example.com", "x" * 65 + "@example.com", "x" * 243 + "@example.com",
    "x" * 242 + "@example.com", "a@example.com\n", "a\u00a0@example.com", "a@example.com\u200b",
    "a@ｅxample.com", "a＠example.com", "a@example.arpa", "a@onion", "a@x.onion", "a@example.test",
]


def test_plain_addresses_are_judged_as_the_library_judges_them():
    for address in ADDRESSES:
        assert _ours_email(address) == _library_email(address), address
    # the short way is taken for the usual ones (else this test would compare the library with itself)
    assert _plain_email("Ops@Example.JP") == "Ops@example.jp"
    assert _plain_email("Postmaster@example.com") == "postmaster@example.com"
    assert _plain_email("a..b@example.com") is None and _plain_email("ü@example.com") is None


def _model_way(raw: bytes):
    try:
        customer = parse_record(Customer, raw)
    except RecordError as exc:
        return ("bad", str(exc))
    return (customer.customer_id, customer.model_dump_json().encode(),
            [(s.component, s.region) for s in customer.services])


def _short_way(raw: bytes):
    try:
        return parse_customer(raw)
    except RecordError as exc:
        return ("bad", str(exc))


ODD_FIELDS = [
    {"name": "  Padded KK  "}, {"name": "\u3000Wide space"}, {"name": "A\u00a0B"}, {"name": "Tab\tName"},
    {"name": "Line\u2028Break"}, {"name": "Zero\u200bWidth"}, {"name": "Emoji 😀 KK"}, {"name": 'Quote " and \\'},
    {"name": ""}, {"name": "   "}, {"name": None}, {"name": 42}, {"name": "x" * 200}, {"name": "x" * 201},
    {"name": " " + "x" * 200 + " "}, {"name": "del\x7f"}, {"name": "c1\x85"}, {"name": "bidi\u202etext"},
    {"customer_id": " c-1"}, {"customer_id": ""}, {"customer_id": 7}, {"customer_id": "é" * 128},
    {"customer_id": "é" * 129}, {"customer_id": "c\u00a0"}, {"customer_id": "x" * 256},
    {"locale": "ja-JP"}, {"locale": "EN"}, {"locale": None}, {"locale": 3}, {"locale": "fr"},
    {"timezone": " Asia/Tokyo "}, {"timezone": ""}, {"timezone": None}, {"timezone": "Mars/Base"}, {"timezone": 9},
    {"timezone": "localtime"}, {"timezone": "UTC"},
    {"tier": ""}, {"tier": "  "}, {"tier": None}, {"tier": " gold "}, {"tier": 1}, {"tier": "x" * 201},
    {"contacts": None}, {"contacts": []}, {"contacts": {}}, {"contacts": "a@example.com"}, {"contacts": [None]},
    {"contacts": [{"email": "A@Example.com"}, {"email": "a@example.COM", "name": "dup"}]},
    {"contacts": [{"email": "a@example.com", "name": "  "}]}, {"contacts": [{"email": "a@example.com", "name": 5}]},
    {"contacts": [{"name": "no address"}]}, {"contacts": [{"email": None}]}, {"contacts": [{"email": "bad"}]},
    {"contacts": [{"email": "ü@example.com"}]}, {"contacts": [{"email": "a@bücher.example"}]},
    {"contacts": [{"email": '"a"@example.com'}]}, {"contacts": [{"email": "a@example.com", "extra": 1}]},
    {"services": None}, {"services": []}, {"services": [{"component": " api ", "region": "eu-west-1"}]},
    {"services": [{"component": "api"}]}, {"services": [{"component": "api", "region": ""}]},
    {"services": [{"component": "api", "region": "r"}, {"component": "api", "region": "r"}]},
    {"services": [{"component": "a\nb", "region": "r"}]}, {"services": ["api"]}, {"services": {"a": 1}},
    {"extra_field": {"nested": [1, 2, 3]}},
]


def _odd_raw_values() -> list[bytes]:
    base = generate_customers(3, seed=3)[0]
    raws = [json.dumps({**base, **odd}).encode() for odd in ODD_FIELDS]
    raws += [json.dumps({**base, **odd}, ensure_ascii=False).encode() for odd in ODD_FIELDS]
    for field in ("customer_id", "name", "contacts", "services", "tier", "timezone", "locale"):
        raws.append(json.dumps({k: v for k, v in base.items() if k != field}).encode())
    text = json.dumps(base)
    raws += [text.replace('"en"', "NaN", 1).encode(), ("\ufeff" + text).encode(), ("\ufeff\ufeff" + text).encode(),
             text.replace(base["name"], "\\ud800").encode(), text[:-1].encode(), b"[]", b"", b"  ", b"\xff",
             text.replace(base["name"], "\\u00e9\\u0301").encode(), (text + " x").encode(),
             text.replace('"name"', '"name": 1, "name"', 1).encode(), b"{" + b" " * 1_000_001 + b"}"]
    return raws


def test_the_short_way_gives_the_models_result_or_its_error():
    plain = 0
    for record in generate_customers(300, seed=11):
        raw = json.dumps(record, ensure_ascii=False).encode()
        assert _short_way(raw) == _model_way(raw), raw
        plain += plain_customer(json.loads(raw)) is not None
    assert plain == 300   # the usual customer takes the short way
    for raw in _odd_raw_values():
        assert _short_way(raw) == _model_way(raw), raw


def test_the_short_way_agrees_on_every_kind_of_character():
    """Every space, control, format and separator character (and a sample of the rest of
    Unicode) in a name, a label and an id: accepted or refused, stored the same way."""
    base = generate_customers(1, seed=5)[0]
    risky = [c for c in map(chr, range(0x110000))
             if unicodedata.category(c) in ("Cc", "Cf", "Zs", "Zl", "Zp") or c.isspace()]
    sample = [chr(i) for i in range(0x20, 0x110000, 331)] + ["\ud800", "\udfff", "\ue000", "\U000f0000"]
    for c in risky + sample:
        for record in ({**base, "name": f"{c}a{c}b{c}"},
                       {**base, "services": [{"component": f"{c}api{c}", "region": "eu-west-1"}]},
                       {**base, "customer_id": f"c{c}1"}):
            raw = json.dumps(record).encode()
            assert _short_way(raw) == _model_way(raw), repr(c)


def test_the_index_follows_any_sequence_of_puts_and_deletes_in_any_batches(tmp_path):
    """Customers new to the index are indexed in bulk; replacements and deletes, also of a customer
    first seen in the same batch, must leave the index as the records say (and so a reopen)."""
    import random

    from domain.affected import CustomerIndex

    rng = random.Random(7)
    pairs = [(c, r) for c in ("api", "db", "web") for r in ("eu", "jp")]

    async def dead_letter(**kwargs):
        pass

    async def run():
        store = CustomerStore(bootstrap_servers=[], topic="t.customers", state_dir=tmp_path, dead_letter=dead_letter,
                              end_offsets=None)
        part = store._parts[0] = Partition(0, tmp_path / "customers-0.db")
        truth: dict[str, set] = {}
        offset = 0
        for _ in range(30):
            records = []
            for _ in range(rng.randrange(1, 40)):
                cid = f"c{rng.randrange(25)}"
                if rng.random() < 0.25:
                    records.append(_record(offset, cid.encode(), None))
                    truth.pop(cid, None)
                else:
                    services = rng.sample(pairs, rng.randrange(0, 4))
                    value = _customer(cid, services=[{"component": c, "region": r} for c, r in services])
                    records.append(_record(offset, cid.encode(), json.dumps(value).encode()))
                    truth[cid] = set(services)
                offset += 1
            await store._apply(part, records, [check(r.key, r.value) for r in records])
            for c, r in pairs:
                expected = {cid for cid, services in truth.items() if (c, r) in services}
                assert part.index.affected(Scope.of([c], [r])) == expected
            assert len(part.index) == len(truth)
        part.close()
        again = Partition(0, tmp_path / "customers-0.db")
        assert await again.build_index() == len(truth)
        for c, r in pairs:
            assert again.index.affected(Scope.of([c], [r])) == \
                {cid for cid, services in truth.items() if (c, r) in services}
        again.close()
        # a restart: the index rebuilt by a child process (streams/customers_index.py) is the same,
        # and a partition the child cannot read (here not a database) is rebuilt in the worker
        from streams.customers_index import IndexChildren

        groups, problems = IndexChildren({0: tmp_path / "customers-0.db"}, processes=2).collect()
        assert not problems and sum(map(len, groups[0].values())) == len(truth)
        (tmp_path / "customers-1.db").mkdir()
        restarted = CustomerStore(bootstrap_servers=[], topic="t.customers", state_dir=tmp_path,
                                  dead_letter=dead_letter, end_offsets=None)
        restarted.begin_preload()
        assert restarted._children is not None and restarted._children.partitions == [0, 1]
        await restarted._preload()
        assert restarted._preloaded == {0: len(truth), 1: 0} and restarted._children is None
        for c, r in pairs:
            assert restarted.index(0).affected(Scope.of([c], [r])) == \
                {cid for cid, services in truth.items() if (c, r) in services}
        assert len(restarted.index(0)) == len(truth) and len(restarted.index(1)) == 0
        for part in restarted._parts.values():
            part.close()
        bulk, one_by_one = CustomerIndex(), CustomerIndex()
        bulk.add_new({(("api", "eu"), ("db", "jp")): ["a", "b"], (): ["c"]})
        for cid, services in (("a", [("api", "eu"), ("db", "jp")]), ("b", [("api", "eu"), ("db", "jp")]), ("c", [])):
            one_by_one.put(cid, services)
        for c, r in pairs:
            assert bulk.affected(Scope.of([c], [r])) == one_by_one.affected(Scope.of([c], [r]))
        assert len(bulk) == len(one_by_one) == 3 and "c" in bulk

    asyncio.run(run())
