"""streams/reach.py: when the brokers count as unreachable, and a probe of a broker that is not there."""

from __future__ import annotations

import socket

from streams.reach import BrokerReach


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_unreachable_only_after_the_grace_with_no_answer_and_back_on_the_first_answer(caplog):
    clock = Clock()
    reach = BrokerReach(bootstrap_servers=["127.0.0.1:1"], after=5.0, clock=clock)
    assert reach.reachable, "not unreachable before a probe could tell"
    clock.now += 4.9
    reach.check()
    assert reach.reachable and abs(reach.silent_for() - 4.9) < 1e-9
    clock.now += 0.2
    reach.check()
    assert not reach.reachable
    assert sum("has answered for" in r.message for r in caplog.records) == 1
    reach.check()
    assert sum("has answered for" in r.message for r in caplog.records) == 1, "said once per outage"
    clock.now += 20
    reach.answered()
    assert reach.reachable and reach.silent_for() == 0
    assert any("answer again after 25s" in r.message for r in caplog.records)


def test_a_broker_answering_keeps_it_reachable():
    clock = Clock()
    reach = BrokerReach(bootstrap_servers=["127.0.0.1:1"], after=5.0, clock=clock)
    for _ in range(10):
        clock.now += 3
        reach.answered()
        reach.check()
        assert reach.reachable


async def test_a_probe_of_a_closed_port_says_nobody_answered():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # bound, not listening: connections are refused
        reach = BrokerReach(bootstrap_servers=[f"127.0.0.1:{port}"], timeout=2.0)
        assert await reach.probe() is False


def test_an_outage_is_within_a_delay_that_reaches_back_into_it():
    clock = Clock()
    reach = BrokerReach(bootstrap_servers=["127.0.0.1:1"], after=5.0, clock=clock)
    assert not reach.outage_within(3600), "no outage yet"
    clock.now += 30          # silent for 30 s: an outage under way
    reach.check()
    assert reach.outage_within(0.1)
    reach.answered()         # back
    clock.now += 2
    assert reach.outage_within(32), "a round decided 32 s ago waited for the brokers"
    assert not reach.outage_within(1.5), "a round decided after the outage ended did not"
