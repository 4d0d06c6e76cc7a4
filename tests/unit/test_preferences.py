"""The preferences agent (streams/preferences.py), run in process: a request from the web lands
on the customer's partition and marks the recipient unsubscribed in the ledger, once however
often it is replayed; bad input is dead-lettered and the stream goes on."""

from __future__ import annotations

import json

from domain import ledger as L
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
    assert "KeyError" in json.loads(dead.sent[1][1])["error"]
    assert list(ledger.partition(0).keys()) == ["c-3"]
