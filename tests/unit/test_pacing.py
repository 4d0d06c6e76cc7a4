"""OUTAGE_SMTP_RATE: the pacer (streams/pacing.py) and the sender's use of it, and the retry of
throttling replies (4xx).

The timed tests run on an event loop whose clock is virtual: when nothing is ready the clock
jumps to the next timer, so seconds of pacing take milliseconds and the times are exact.
"""

from __future__ import annotations

import asyncio
import math
import selectors

import pytest

from notifiers.smtp import PERMANENT, TEMPORARY, SendResult, _by_code
from streams.pacing import SAFETY, Pacer
from tests.unit.test_sender import Harness, customers, jobs_for


class _JumpingSelector(selectors.DefaultSelector):
    """Never sleeps: when no file is ready it moves ``clock`` on by the timeout it was given."""

    def __init__(self, clock: "VirtualTimeLoop") -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout=None):
        events = super().select(0 if timeout is not None else 0.01)
        # a nanosecond per turn, as a real clock moves on, plus the wait when nothing happened
        self._clock.now += 1e-9 + (0.0 if events or timeout is None else timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 1_000_000.0   # a monotonic clock after days of uptime: the floats of a real one
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


def run_virtual(main, timeout: float = 600.0):
    """Run ``main()`` on a virtual-time loop (failing after ``timeout`` virtual seconds)."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), timeout))
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


def most_in_one_second(times: list[float]) -> int:
    """The most of ``times`` in any closed one-second window [t, t + 1]."""
    times = sorted(times)
    most, j = 0, 0
    for i, t in enumerate(times):
        j = max(j, i)
        while j + 1 < len(times) and times[j + 1] - t <= 1.0:
            j += 1
        most = max(most, j - i + 1)
    return most


# -- the pacer ---------------------------------------------------------------------------------

def test_the_pacer_spreads_the_sends_over_the_second():
    rate, sends, runners = 40, 200, 8
    times: list[float] = []

    async def main():
        pacer = Pacer(rate)
        loop = asyncio.get_running_loop()

        async def runner():
            for _ in range(sends // runners):
                await pacer.wait()
                times.append(loop.time())

        await asyncio.gather(*(runner() for _ in range(runners)))

    run_virtual(main)
    assert len(times) == sends
    assert most_in_one_second(times) == rate          # never rate + 1, and not fewer either
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 1 / rate                        # spaced, not bursts ...
    assert max(gaps) <= 1.01 / rate                     # ... and evenly, not a burst then a pause
    assert rate * min(gaps) > 1.0 + 1e-4                # rate + 1 sends span over a second, by a margin
    assert times[-1] - times[0] == pytest.approx((sends - 1) * SAFETY / rate, rel=1e-6)


def test_the_pacer_saves_nothing_up_while_idle():
    rate = 10
    times: list[float] = []

    async def main():
        pacer = Pacer(rate)
        loop = asyncio.get_running_loop()
        await pacer.wait()
        await asyncio.sleep(60)                         # a long idle time
        for _ in range(3):
            await pacer.wait()
            times.append(loop.time())

    run_virtual(main)
    # the first after the pause goes at once, the next ones wait their full interval: no burst
    assert [b - a for a, b in zip(times, times[1:])] == pytest.approx([SAFETY / rate] * 2, rel=1e-6)


def test_a_caller_cancelled_while_waiting_takes_no_slot():
    rate = 10
    times: list[float] = []

    async def main():
        pacer = Pacer(rate)
        loop = asyncio.get_running_loop()
        await pacer.wait()
        start = loop.time()
        cancelled = asyncio.create_task(pacer.wait())
        await asyncio.sleep(0.01)
        cancelled.cancel()
        await pacer.wait()
        times.append(loop.time() - start)

    run_virtual(main)
    assert times == [pytest.approx(SAFETY / rate, rel=1e-6)]   # one interval, not two


async def test_the_pacer_on_a_real_loop():
    rate = 100
    loop = asyncio.get_running_loop()
    pacer = Pacer(rate)
    times = []
    for _ in range(11):
        await pacer.wait()
        times.append(loop.time())
    assert min(b - a for a, b in zip(times, times[1:])) >= 1 / rate


@pytest.mark.parametrize("rate", [0, -1, math.inf, math.nan, "40", True])
def test_a_pacer_needs_a_finite_rate_above_zero(rate):
    with pytest.raises(ValueError):
        Pacer(rate)


def test_no_rate_is_no_pacer():
    assert Pacer.of(None) is None
    pacer = Pacer.of(2.5)
    assert pacer.rate == 2.5 and pacer.interval == pytest.approx(SAFETY / 2.5)


# -- the sender --------------------------------------------------------------------------------

class SkippingHarness(Harness):
    """``refresh`` says nothing is owed for the addresses in ``skip``."""

    def __init__(self, skip: set[str], **kw):
        super().__init__(**kw)
        self.skip = skip

    def refresh(self, job, p=0):
        return None if job.email in self.skip else super().refresh(job, p)


def test_the_sender_hands_over_at_most_rate_limit_a_second_and_skips_take_no_slot():
    rate = 50
    emails = [f"u{i}@d{i % 10}.example.com" for i in range(150)]
    skip = set(emails[::3])                              # 50 skipped, 100 sent
    times: list[float] = []
    result = {}

    async def main():
        loop = asyncio.get_running_loop()
        h = SkippingHarness(skip, rate_limit=rate)
        assert h.sender.rate_cap == rate
        h.mailer.responder = lambda mail_from, rcpt, data: times.append(loop.time())   # None: accepted
        done = asyncio.Event()
        start = loop.time()
        await h.sender.submit(jobs_for(customers(emails)), 0, on_done=done.set)
        await done.wait()
        result["took"] = loop.time() - start
        await h.sender.stop()
        result["sent"] = sorted(m.rcpt for m in h.mailer.sent)

    run_virtual(main)
    assert result["sent"] == sorted(set(emails) - skip)   # each once, the skipped ones never
    assert len(times) == 100
    assert most_in_one_second(times) <= rate
    assert result["took"] >= 1.9
    # 99 intervals: had the 50 skipped jobs taken a slot each, it would take 149 (2.98 s)
    assert times[-1] - times[0] < 2.1


def test_a_sender_without_rate_limit_has_no_cap():
    assert Harness().sender.rate_cap is None
    with pytest.raises(ValueError):
        Harness(rate_limit=0)


# -- throttling replies --------------------------------------------------------------------------

@pytest.mark.parametrize("code", [421, 450, 451, 452])
def test_a_throttling_reply_is_temporary(code):
    assert _by_code(code, "try again later").status == TEMPORARY
    assert _by_code(550, "no such user").status == PERMANENT


@pytest.mark.parametrize("code", [421, 450, 451, 452])
def test_a_throttling_reply_then_250_is_one_accepted_send_after_a_backoff(code):
    throttled = "busy@x.example.com"
    emails = [throttled] + [f"u{i}@x{i % 3}.example.com" for i in range(9)]
    calls: dict[str, list[float]] = {}
    result = {}

    async def main():
        loop = asyncio.get_running_loop()
        h = Harness(rate_limit=50)   # the default retry policy: the first wait is 0.5 to 1 s
        h.mailer.responder = lambda mail_from, rcpt, data: calls.setdefault(rcpt, []).append(loop.time())
        h.mailer.fail_next(throttled, SendResult(TEMPORARY, code, "4.7.0 Too many messages, slow down"))
        done = asyncio.Event()
        await h.sender.submit(jobs_for(customers(emails)), 0, on_done=done.set)
        await done.wait()
        await h.sender.stop()
        result.update(sent=[m.rcpt for m in h.mailer.sent], dead=h.dead, ledger=set(h.ledger))

    run_virtual(main)
    assert result["dead"] == []
    assert sorted(result["sent"]) == sorted(emails)              # nobody skipped, nobody twice
    assert result["sent"].count(throttled) == 1
    assert len(result["ledger"]) == len(emails)
    first, second = calls[throttled]                              # one refusal, one retry
    assert 0.5 <= second - first <= 1.0 + 2 * SAFETY / 50         # backed off, then paced
    assert all(len(calls[e]) == 1 for e in emails if e != throttled)

