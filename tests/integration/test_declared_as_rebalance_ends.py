"""An incident declared as a rebalance ends is taken up: two workers hold two partitions each, a
third joins (faust's assignor has kept what each one holds and given it none), and the incident
is declared at once.

It is declared as soon as the third worker is assigned, while the other two may still be
recovering: faust drops what it reads then and seeks back to the committed offsets, and the
incident's partition has none committed yet. aiokafka did not move such a partition, so the event
was never read (1 run in 3 failed so here; "the fan-out never began" in 4 of 13 three-worker
kill -9 runs of test_failover on a fresh Kafka). ``streams/kafka/transport.py`` seeks it to its
start; 6 of 6 runs passed after that.
"""

from __future__ import annotations

import pytest

from tests.factories import load_customers, make_customers
from tests.integration.faults_kit import (  # noqa: F401 - faulty is a fixture
    declare_event, faulty, ready, smtp_env, until,
)

pytestmark = pytest.mark.integration


@pytest.mark.timeout(240)
@pytest.mark.only_broker("kafka")
async def test_an_incident_declared_as_a_rebalance_ends_is_taken_up(workers, faulty, broker, prefix):
    load_customers(broker.bootstrap, prefix, make_customers(200, tag="u"))
    server = faulty()
    first = [workers(smtp_env(server.serve(name=f"w{i}")), ready=False) for i in range(2)]
    await ready(*first)
    late = workers(smtp_env(server.serve(name="w2")), ready=False)
    await ready(late)
    # declared as soon as the rebalance that took in the third worker has assigned it (faust's
    # assignor has given it nothing in every run so far, the other two keeping their partitions;
    # were it given some, the declaration would still come as that rebalance ends)
    assert await until(lambda: "Setting newly assigned partitions" in late.log_path.read_text(errors="replace"), 30), \
        "the third worker was not assigned within 30 s of being ready"
    event = declare_event(first[0], update_interval_seconds=600)
    incident = event["incident_id"]
    assert await until(lambda: len(server.received(incident)) > 0, 30, poll=0.1), \
        "no notice within 30 s of the declaration: its event was read while the workers recovered, dropped and not read again"
