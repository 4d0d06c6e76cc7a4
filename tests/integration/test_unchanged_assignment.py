"""A worker whose partitions a rebalance leaves as they were keeps reading them: two workers hold
two partitions each, a third joins and gets none (faust's assignor keeps what each one holds),
and an incident declared after that is still taken up."""

from __future__ import annotations

import pytest

from tests.integration.faults_kit import (  # noqa: F401 - faulty is a fixture
    declare_event, faulty, load_customers, make_customers, ready, smtp_env, until,
)

pytestmark = pytest.mark.integration


@pytest.mark.skip(reason="open defect, found 2026-12-03: failed 3 of 4 runs here (one failure not read; 3 runs with "
                         "debug logging passed), and 2 of 3 at 53ec838, before the last stops' rebalance changes; the two workers that keep their partitions take up no event "
                         "declared after the rebalance, their fetcher running and their agents waiting. Seen as 'the "
                         "fan-out never began' in 4 of 13 runs of test_failover's three-worker kill -9 on a fresh "
                         "Kafka, whose third worker had joined late")
@pytest.mark.timeout(240)
@pytest.mark.only_broker("kafka")
async def test_a_rebalance_that_keeps_a_workers_partitions_does_not_stop_its_reading(workers, faulty, broker, prefix):
    load_customers(broker.bootstrap, prefix, make_customers(200, tag="u"))
    server = faulty()
    first = [workers(smtp_env(server.serve(name=f"w{i}")), ready=False) for i in range(2)]
    await ready(*first)
    late = workers(smtp_env(server.serve(name="w2")), ready=False)
    await ready(late)
    assert await until(lambda: "assigned partitions set()" in late.log_path.read_text(errors="replace"), 30), \
        "the third worker got partitions: the rebalance moved some, which this test is not about"
    event = declare_event(first[0], update_interval_seconds=600)
    incident = event["incident_id"]
    assert await until(lambda: len(server.received(incident)) > 0, 30, poll=0.1), \
        "no notice within 30 s of the declaration: the workers that kept their partitions stopped reading them"
