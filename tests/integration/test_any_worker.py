"""Every worker answers for every incident: reads, 404 and 409 are the same whichever worker receives
the request (the contract). Real worker processes on one prefix, incidents on every partition."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from kafka.partitioner.default import murmur2

from streams.incident_view import IncidentView, decode_key, decode_state
from tests.conftest import API_TOKEN, http
from tests.factories import customer, load_customers

pytestmark = pytest.mark.integration

PARTITIONS = 4   # base_env's OUTAGE_PARTITIONS
CUSTOMERS = [customer(f"c-any-{n}", name=f"Any {n}", contacts=[f"ops{n}@any{n}.example.com"],
                      services=[("api", "eu-west-1")]) for n in range(6)]


def partition_of(key: str, partitions: int = PARTITIONS) -> int:
    """The partition the default (murmur2) partitioner gives a key: where the incident's events go."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def incident_ids(tag: str) -> dict[int, str]:
    """One incident id per partition."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < PARTITIONS:
        candidate = f"inc-{tag}-{n}"
        found.setdefault(partition_of(candidate), candidate)
        n += 1
    return found


def declare_body(incident_id: str) -> dict:
    return {"incident_id": incident_id, "severity": "major", "title": f"Trouble {incident_id}",
            "message": "We are looking into it.", "components": ["api"], "update_interval_seconds": 3600}


def held_count(worker) -> int:
    """Unresolved incidents this worker holds (their events' partition is its own): the
    ``outage_active_incidents`` gauge of its /metrics."""
    status, text = worker.get("/metrics")
    assert status == 200
    found = re.search(r"^outage_active_incidents (\S+)$", text, re.M)
    assert found, "no outage_active_incidents in /metrics"
    return int(float(found.group(1)))


async def eventually(check, timeout: float = 15.0, interval: float = 0.2):
    """``check()`` until it returns a true value (or stops raising AssertionError); its value.
    Waits without blocking the loop: the SMTP capture server runs on it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
            problem = f"{check.__name__} returned {value!r}"
        except AssertionError as exc:
            problem = str(exc)
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {problem}")
        await asyncio.sleep(interval)


def summary(doc: dict) -> list[tuple[str, int, str]]:
    return sorted((i["incident_id"], i["seq"], i["status"]) for i in doc)


@pytest.fixture
def fleet(workers, broker, prefix):
    """``n`` ready workers on the test's prefix, after loading the customers."""
    def start(n: int):
        load_customers(broker.bootstrap, prefix, CUSTOMERS)
        started = [workers(ready=False) for _ in range(n)]
        for w in started:
            w.wait_ready(timeout=90)
        return started
    return start


def changelog_records(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every raw (partition, key, value) of ``topic``, in offset order per partition."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False, consumer_timeout_ms=1500)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return [(m.partition, m.key, m.value) for m in consumer]
    finally:
        consumer.close()


@pytest.mark.parametrize("n", [2, 3])
async def test_every_worker_answers_for_every_incident(fleet, broker, prefix, smtp, n):
    crew = fleet(n)
    first = crew[0]
    ids = incident_ids(f"w{n}")
    for p, incident_id in sorted(ids.items()):
        status, body = http("POST", first.url + "/api/incidents", declare_body(incident_id), token=API_TOKEN)
        assert status == 201, body
    wanted = sorted((i, 1, "investigating") for i in ids.values())

    # the incidents are spread: at least two workers hold some, none holds all. (A worker that
    # joins after the others have split the partitions may get none: faust's assignor keeps what
    # each holds, 2 + 2 + 0 of 4 partitions; it happened once in a clean-clone run on Kafka.)
    def spread():
        counts = [held_count(w) for w in crew]
        assert sum(counts) == len(ids) and max(counts) < len(ids) and sum(c > 0 for c in counts) >= 2, counts
        return counts
    await eventually(spread, timeout=60)

    # the same list, the same incidents and seq, the same status page, from every worker
    for w in crew:
        def listed(w=w):
            status, body = w.get("/api/incidents")
            assert status == 200 and summary(body["incidents"]) == wanted, (w.url, body)
            return True

        def status_json(w=w):
            status, body = w.get("/status.json")
            assert status == 200 and summary(body["active"]) == wanted and body["recently_resolved"] == [], body
            return True
        await eventually(listed)
        await eventually(status_json)
        status, page = w.get("/status")
        assert status == 200 and all(f"Trouble {i}" in page for i in ids.values())
        for incident_id in ids.values():
            status, body = w.get(f"/api/incidents/{incident_id}")
            assert status == 200 and body["seq"] == 1 and body["history"], (w.url, incident_id, body)
        # unknown: 404 everywhere, for reads and for changes
        assert w.get("/api/incidents/inc-nobody")[0] == 404
        assert http("POST", w.url + "/api/incidents/inc-nobody/updates", {"message": "x"}, token=API_TOKEN)[0] == 404
        assert http("POST", w.url + "/api/incidents/inc-nobody/resolve", {}, token=API_TOKEN)[0] == 404
        # a declared id is taken, whichever worker is asked
        assert http("POST", w.url + "/api/incidents", declare_body(ids[0]), token=API_TOKEN)[0] == 409
    for incident_id in ids.values():   # each incident, with its history, alike everywhere
        assert len({json.dumps(w.get(f"/api/incidents/{incident_id}")[1], sort_keys=True) for w in crew}) == 1

    # updates of every incident through one worker, which does not hold all of them (spread()):
    # each is accepted, and reaches every affected contact
    await smtp.wait_for(len(CUSTOMERS) * len(ids), timeout=60)   # every acknowledgement first
    assert held_count(first) < len(ids)
    for incident_id in ids.values():
        status, body = http("POST", first.url + f"/api/incidents/{incident_id}/updates",
                            {"status": "identified", "message": "Found it."}, token=API_TOKEN)
        assert status == 202, body
    everyone = sorted(c["contacts"][0]["email"] for c in CUSTOMERS)
    for incident_id in ids.values():
        entries = await smtp.wait_for(len(CUSTOMERS), timeout=60, incident=incident_id, kind="progress")
        assert sorted(e["recipients"][0] for e in entries) == everyone, incident_id

    # resolved through one worker: a change through any worker is 409 once it has seen the resolve
    target = ids[0]
    status, body = http("POST", crew[-1].url + f"/api/incidents/{target}/resolve", {"message": "Fixed."},
                        token=API_TOKEN)
    assert status == 202, body
    for w in crew:
        def resolved(w=w):
            status, body = w.get(f"/api/incidents/{target}")
            return status == 200 and body["status"] == "resolved" and body["resolved_at"] and body["seq"] == 3
        await eventually(resolved)
        status, body = http("POST", w.url + f"/api/incidents/{target}/updates", {"message": "late"}, token=API_TOKEN)
        assert status == 409, (w.url, body)
        assert http("POST", w.url + f"/api/incidents/{target}/resolve", {}, token=API_TOKEN)[0] == 409
    docs = [w.get("/status.json")[1] for w in crew]
    assert [d["recently_resolved"][0]["incident_id"] for d in docs] == [target] * n

    # what the view reads: faust's json codec on both sides of the incidents table's changelog,
    # each incident on the partition of its events
    records = changelog_records(broker.bootstrap, prefix + "worker-incidents-changelog")
    assert records
    for p, key, value in records:
        assert key.startswith(b'"') and json.loads(key) in ids.values()
        state = decode_state(value)
        assert state is not None and state.incident_id == decode_key(key) and ids[p] == state.incident_id
    view = IncidentView(bootstrap_servers=broker.bootstrap.split(","), topic="unused", partitions=PARTITIONS)
    view.apply((key, value) for _, key, value in records)
    assert sorted((s.incident_id, s.seq, s.status) for s in view.states()) == sorted(
        (i["incident_id"], i["seq"], i["status"]) for i in docs[0]["active"] + docs[0]["recently_resolved"])
    assert len({json.dumps([d["active"], d["recently_resolved"]], sort_keys=True) for d in docs}) == 1


def test_incident_ids_cover_every_partition():
    ids = incident_ids("x")
    assert sorted(ids) == list(range(PARTITIONS))
    assert all(re.fullmatch(r"inc-x-\d+", i) for i in ids.values())
    # the worker's producer (aiokafka's default partitioner) places keys the same way
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    for p, incident_id in ids.items():
        assert partitioner(incident_id.encode(), list(range(PARTITIONS)), list(range(PARTITIONS))) == p


def test_the_view_applies_changelog_records_in_order():
    view = IncidentView(bootstrap_servers=["127.0.0.1:9"], topic="t", partitions=1)
    base = {"incident_id": "inc-1", "severity": "major", "status": "investigating", "title": "T",
            "components": ["api"], "started_at": "2026-11-25T10:00:00+00:00", "updated_at": "2026-11-25T10:00:00+00:00",
            "seq": 1}
    key = json.dumps("inc-1").encode()
    view.apply([(key, json.dumps(base).encode()), (key, json.dumps({**base, "seq": 2, "status": "identified"}).encode()),
                (json.dumps("inc-2").encode(), json.dumps({**base, "incident_id": "inc-2"}).encode())])
    assert (view.get("inc-1").seq, view.get("inc-1").status) == (2, "identified") and view.get("inc-2")
    view.apply([(key, None)])   # a tombstone deletes
    assert view.get("inc-1") is None and [s.incident_id for s in view.states()] == ["inc-2"]
    # what is not a record of this table is skipped, and the rest still applies
    view.apply([(b"not json", b"{}"), (b"42", b"{}"), (None, b"{}"), (key, b"{broken"), (key, b"[]"),
                (key, json.dumps({"seq": 3}).encode()), (key, json.dumps(base).encode())])
    assert view.get("inc-1").seq == 1 and len(view.states()) == 2
    assert not view.caught_up   # it has not read the topic
