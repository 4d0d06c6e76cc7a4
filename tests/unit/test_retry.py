"""The retry policy of temporary SMTP failures (domain/retry.py): delays and giving up; and the
sender, the one layer that retries, following it."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime, timedelta, timezone

import pytest

from domain.retry import RetryPolicy
from notifiers.smtp import MemoryMailer
from streams.sender import Sender
from tests.unit.test_sender import customers, jobs_for


def lowest() -> float:
    return 0.0


def highest() -> float:
    return 1.0 - 1e-12


def test_the_delays_double_from_the_first_up_to_the_cap():
    policy = RetryPolicy(first_delay=1.0, max_delay=60.0)
    assert [policy.ceiling(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    # equal jitter: between half the ceiling and the ceiling
    assert [policy.delay(n, lowest) for n in (1, 2, 3, 7)] == [0.5, 1.0, 2.0, 30.0]
    assert policy.delay(1, highest) == pytest.approx(1.0)
    assert policy.delay(7, highest) == pytest.approx(60.0)


def test_jittered_delays_stay_within_their_bounds_and_differ():
    policy = RetryPolicy(first_delay=0.5, max_delay=20.0)
    rng = random.Random(3)
    for n in range(1, 40):
        ceiling = min(20.0, 0.5 * 2 ** (n - 1))
        samples = [policy.delay(n, rng.random) for _ in range(200)]
        assert all(ceiling / 2 <= d < ceiling for d in samples), n
        assert len(set(samples)) > 150  # jobs that failed together come back apart


def test_the_random_source_decides_the_jitter_alone():
    policy = RetryPolicy()
    a, b = random.Random(9), random.Random(9)
    assert [policy.delay(n, a.random) for n in range(1, 20)] == [policy.delay(n, b.random) for n in range(1, 20)]


def test_a_long_run_of_failures_stays_at_the_cap():
    policy = RetryPolicy(first_delay=1.0, max_delay=60.0, give_up_after=10 ** 9)
    assert policy.ceiling(10_000) == 60.0
    assert policy.next_delay(10_000, 5.0, highest) == pytest.approx(60.0)


def test_give_up_by_age_since_the_first_try():
    policy = RetryPolicy(give_up_after=3600)
    assert not policy.gives_up(0) and not policy.gives_up(3599.9)
    assert policy.gives_up(3600) and policy.gives_up(7200)
    assert policy.next_delay(1, 3600, lowest) is None
    assert policy.next_delay(50, 4000, lowest) is None


def test_the_last_wait_ends_at_the_give_up_age():
    policy = RetryPolicy(first_delay=1.0, max_delay=60.0, give_up_after=100.0)
    assert policy.next_delay(9, 80.0, lowest) == 20.0       # 30 s would overshoot: cut to 20
    assert policy.next_delay(9, 10.0, lowest) == 30.0
    # so tries keep coming until the age, then the next failure gives up
    age, failures, tries = 0.0, 0, [0.0]
    while (wait := policy.next_delay(failures + 1, age, highest)) is not None:
        failures += 1
        age += wait
        tries.append(age)
    assert tries[-1] == pytest.approx(100.0) and all(b > a for a, b in zip(tries, tries[1:]))
    assert all(b - a <= 60.0 for a, b in zip(tries, tries[1:]))


def test_the_defaults_are_the_pipelines():
    from core.settings import Settings

    policy = RetryPolicy()
    assert policy.give_up_after == Settings.model_fields["smtp_give_up_seconds"].default == 6 * 3600
    assert (policy.first_delay, policy.max_delay) == (1.0, 60.0)


@pytest.mark.parametrize("kw", [dict(first_delay=0), dict(max_delay=-1), dict(give_up_after=-1)])
def test_a_policy_that_cannot_work_is_refused(kw):
    with pytest.raises(ValueError):
        RetryPolicy(**kw)


def test_failures_count_from_one():
    with pytest.raises(ValueError):
        RetryPolicy().delay(0, lowest)


def test_the_policy_is_a_value():
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_delay = 1.0  # type: ignore[misc]
    assert policy == RetryPolicy() and hash(policy) == hash(RetryPolicy())


# -- the one layer that retries: the sender ---------------------------------------------------


class _Rand:
    """A random source that always says ``value``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


async def _send_with_failures(policy, failures: int, *, rng_value: float = 0.0):
    """One notice through a Sender whose mailer fails it ``failures`` times (451); returns the
    mailer's call times, the times it was composed for, the dead letters and what was sent."""
    mailer = MemoryMailer()
    calls: list[float] = []
    real_send = mailer.send

    async def send(mail_from, rcpt, data):
        calls.append(time.monotonic())
        return await real_send(mail_from, rcpt, data)

    mailer.send = send
    mailer.fail_next("flaky@example.com", times=failures)
    start = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
    t0 = time.monotonic()
    composed: list[datetime] = []
    dead: list[str] = []
    done: list[bool] = []

    def clock() -> datetime:
        return start + timedelta(seconds=time.monotonic() - t0)

    def compose(job, now):
        composed.append(now)
        return job.message_id.encode()

    async def record(job, p, at):
        pass

    async def dead_letter(job, reason):
        dead.append(reason)

    sender = Sender(mailer=mailer, mail_from="s@example.com", compose=compose, record=record,
                    refresh=lambda job, p: job, dead_letter=dead_letter, clock=clock, concurrency=1,
                    retry=policy, rng=_Rand(rng_value))
    await sender.submit(jobs_for(customers(["flaky@example.com"])), 0, on_done=lambda: done.append(True))
    for _ in range(1000):
        if done:
            break
        await asyncio.sleep(0.01)
    await sender.stop()
    assert done, "the notice was never finished"
    return calls, composed, dead, [m.rcpt for m in mailer.sent]


async def test_the_sender_waits_what_the_policy_says_and_composes_each_try_afresh():
    policy = RetryPolicy(first_delay=0.1, max_delay=0.4, give_up_after=30)
    calls, composed, dead, sent = await _send_with_failures(policy, 3, rng_value=0.0)
    assert sent == ["flaky@example.com"] and not dead
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert len(gaps) == 3
    # equal jitter at its lowest: 0.05, 0.1, 0.2 s (half of each ceiling); never early, and late
    # only by what a loaded machine adds (the default policy's first wait alone is 0.5 s)
    for gap, expected in zip(gaps, (0.05, 0.1, 0.2)):
        assert expected - 0.005 <= gap < expected + 0.3, gaps
    # every try is composed at its own time, so it states what is true then
    assert len(composed) == 4 and all(b > a for a, b in zip(composed, composed[1:]))


async def test_the_sender_gives_up_at_the_policys_age_and_says_why():
    policy = RetryPolicy(first_delay=0.05, max_delay=0.05, give_up_after=0.3)
    calls, _, dead, sent = await _send_with_failures(policy, 1000, rng_value=0.999)
    assert not sent and len(dead) == 1
    assert "temporary" in dead[0] and "451" in dead[0] and f"({len(calls)} attempts)" in dead[0]
    # given up by age, not by a count of tries: the last try at the give-up age (plus what a
    # loaded machine adds), tries about 0.05 s apart until then
    assert 0.3 <= calls[-1] - calls[0] < 0.3 + 0.3
    assert 3 <= len(calls) <= 9


def test_the_senders_shorthands_override_the_policy():
    def sender(**kw):
        return Sender(mailer=None, mail_from="s@example.com", compose=None, record=None, refresh=None,
                      dead_letter=None, clock=None, **kw)

    assert sender().retry == RetryPolicy()
    assert sender(give_up_seconds=60).retry == RetryPolicy(give_up_after=60)
    assert sender(retry=RetryPolicy(first_delay=2), retry_max_delay=5).retry == RetryPolicy(first_delay=2, max_delay=5)
