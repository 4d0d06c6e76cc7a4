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
    what, cid, record, services_bytes, services = check(b"c-1", json.dumps(_customer()).encode())
    assert (what, cid) == ("put", "c-1")
    back = customer_of_json(record)
    assert back.locale == "ja" and [c.email for c in back.contacts] == ["Ops@example.jp"]
    assert services == [("api", "ap-northeast-1")] == decode_services(services_bytes)


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
