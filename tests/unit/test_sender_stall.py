"""The send rate through a broker stall (streams/sender.py, ``RECORD_STALL_SECONDS``): records held
back by the broker (a partition's leader lost) say nothing of how fast emails go out."""

from __future__ import annotations

import asyncio
import time

from notifiers.smtp import MemoryMailer, SendResult
from streams import sender as S
from tests.unit.test_sender import Harness, customers, jobs_for, wait_for

SEND_SECONDS = 0.01    # per email, 4 connections: ~400 emails/s
STALL_SECONDS = 2.0


async def rate_after_a_stall() -> tuple[float, float]:
    """(the rate measured before the stall, the rate right after it): 4 connections; once the rate
    is measured the broker holds every record of even customers for 2 s, odd ones go through."""
    stall = {"until": 0.0}

    async def send(mail_from, rcpt, data):
        await asyncio.sleep(SEND_SECONDS)
        return SendResult("accepted", 250, "OK")

    mailer = MemoryMailer()
    mailer.send = send
    h = Harness(mailer, concurrency=4)
    plain = h.record

    async def record(job, p, at):
        if int(job.customer_id.split("-")[1]) % 2 == 0 and time.monotonic() < stall["until"]:
            await asyncio.sleep(stall["until"] - time.monotonic())
        await plain(job, p, at)

    h.sender._record = record
    await h.sender.start()
    try:
        cs = customers([f"a{i}@example.com" for i in range(6000)])
        await h.sender.submit(jobs_for(cs), 0)
        await wait_for(lambda: h.sender.rate.measured, timeout=20)
        before = h.sender.rate.value
        stall["until"] = time.monotonic() + STALL_SECONDS
        await asyncio.sleep(STALL_SECONDS + 0.6)   # the stall, and a few sends after it
        return before, h.sender.rate.value
    finally:
        await h.sender.stop(timeout=5)


async def test_a_broker_stall_is_not_measured_as_a_slow_send_rate():
    before, after = await rate_after_a_stall()
    print(f"guarded: {before:.0f}/s -> {after:.0f}/s")
    assert after >= 0.6 * before, f"rate {before:.0f}/s before a 2 s broker stall, {after:.0f}/s after it"


async def test_without_the_guard_the_stall_would_be_measured_as_a_slow_rate(monkeypatch):
    # the scenario is real: with the guard off, the same stall drags the rate down
    monkeypatch.setattr(S, "RECORD_STALL_SECONDS", float("inf"))
    before, after = await rate_after_a_stall()
    print(f"unguarded: {before:.0f}/s -> {after:.0f}/s")
    assert after < 0.6 * before, f"rate {before:.0f}/s before, {after:.0f}/s after: the stall did not show"
