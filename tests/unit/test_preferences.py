"""The preferences agent (streams/preferences.py), run in process: a request from the web lands
on the customer's partition and marks the recipient unsubscribed (or records its choice) in the
ledger, once however often it is replayed; bad input is dead-lettered and the stream goes on."""

from __future__ import annotations

import json

from domain import ledger as L
from domain import preferences as P
from streams.deadletter import DeadLetters
from streams.preferences import Preferences
from tests.inmemory import Clock, Table, Topic


def wired():
    clock, ledger = Clock(), Table()
    topic, dead = Topic("t.preferences"), Topic("t.dead-letters", partitions=1)
    return Preferences(topic=topic, ledger=ledger, dlq=DeadLetters(dead, clock), clock=clock), topic, dead, ledger


async def test_an_unsubscribe_from_the_web_reaches_the_ledger_once():
    prefs, topic, dead, ledger = wired()
    await prefs.request_unsubscribe("c-1", "r-1")
    await prefs.request_unsubscribe("c-1", "r-1")      # clicked twice, or replayed
    assert [key for key, _, _ in topic.sent] == [b"c-1", b"c-1"]   # keyed by the customer: its partition
    await prefs.agent(topic.stream(partition_of=lambda key: 3))
    assert L.unsubscribed(ledger.partition(3).get("c-1")) == frozenset({"r-1"})
    assert list(ledger.parts) == [3] and dead.sent == []               # on the customer's partition only
    assert L.unsubscribed(ledger.recovered(3).get("c-1")) == frozenset({"r-1"})   # changelogged


async def test_bad_input_is_dead_lettered_and_the_stream_goes_on():
    prefs, topic, dead, ledger = wired()
    await topic.send(key=b"c-1", value=b"not json")
    await topic.send(key=b"c-2", value=json.dumps({"customer_id": "c-2"}).encode())   # no recipient
    await prefs.request_unsubscribe("c-3", "r-3")
    await prefs.agent(topic.stream())
    assert [json.loads(v)["topic"] for _, v, _ in dead.sent] == ["t.preferences", "t.preferences"]
    assert "recipient: must be a non-empty string" in json.loads(dead.sent[1][1])["error"]
    assert list(ledger.partition(0).keys()) == ["c-3"]


async def test_a_choice_and_its_undo_reach_the_ledger_and_an_old_unsubscribe_record_still_reads():
    prefs, topic, dead, ledger = wired()
    # a record written before choices existed: no "receive", action unsubscribe
    await topic.send(key=b"c-1", value=json.dumps({"customer_id": "c-1", "recipient": "r-1", "action": "unsubscribe",
                                                   "at": "2026-11-25T10:00:00+00:00"}).encode())
    await prefs.request("c-1", "r-2", "start-and-end")
    await prefs.request("c-1", "r-2", "start-and-end")     # replayed: nothing more changes
    await prefs.request("c-1", "r-1", "all")               # lifts the unsubscribe
    await prefs.request("c-1", "r-3", "none")
    await prefs.request("c-1", "r-3", "all")               # undo: back to the choice before
    await topic.send(key=b"c-1", value=json.dumps({"customer_id": "c-1", "recipient": "r-4", "action": "receive",
                                                   "receive": "some"}).encode())
    await prefs.agent(topic.stream())
    entry = ledger.partition(0).get("c-1")
    assert P.receive_of(entry, "r-1") == "all" and L.unsubscribed(entry) == frozenset()
    assert P.receive_of(entry, "r-2") == "start-and-end" and P.previous(entry, "r-2") == "all"
    assert P.receive_of(entry, "r-3") == "all" and P.previous(entry, "r-3") == "none"
    assert P.receive_of(entry, "r-4") == "all"
    assert [json.loads(v)["error"] for _, v, _ in dead.sent] == [
        "BadRequest: receive: must be one of all, start-and-end, none"]
