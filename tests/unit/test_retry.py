"""The retry policy of temporary SMTP failures (domain/retry.py): delays and giving up."""

from __future__ import annotations

import random

import pytest

from domain.retry import RetryPolicy


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
    from outage.settings import Settings

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
