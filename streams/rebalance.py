"""Rebalancing and stopping: what a worker does when the consumer group moves partitions, and when
it stops; and whether it is ready.

Runtime contract:
- Input: faust's signals (``Rebalance.wire``): partitions revoked, partitions assigned, rebalance
  complete (the tables are recovered for the partitions assigned), before shutdown. Only the
  partitions of ``rounds`` count (co-partitioned with the customers, the ledger and the
  latest-rounds table); ``Membership`` tells the rest which of them are held, whether the group
  was joined once and whether the tables are recovered.
- On revoke: the sender sets the queued notices of the revoked partitions aside and waits (at
  most ``timeout``: twice the SMTP timeout, as ``streams/app.py`` wires it) only for their sends
  under way, which record themselves in the ledger; then the producer is flushed, so those
  records are written before the partitions go. No fan-out is waited for: a round is
  acknowledged once it is recorded as owed.
- On assign: not recovered until the tables of the new assignment are. Every partition assigned
  is taken up as a new one, those held before too: what the sender set aside is dropped, the
  views of the ledger are dropped, the holding updates forget what they kept for the partitions
  held before and those assigned now (rebuilt from the ledger when next used), and the audience
  is told (a round decided before now says nothing of latency there). The partitions assigned
  are the ones held from then on.
- Once recovered (rebalance complete): joined (for good) and recovered; every round still owed
  on the partitions held now is submitted again, then every ticket-ack still owed
  (``Audience.resume``, in the background), earliest promise first.
- On shutdown: the sender finishes (and records) the sends under way and gives up the rest, the
  delivery helpers (if any) finish theirs (each within ``timeout``), and the producer is
  flushed; what is still owed stays in the latest-rounds table, for whoever holds the
  partitions next.
- Guarantees: nothing owed is lost, since a notice given up on a revocation, an assignment or a
  stop is not finished, so its round stays owed in the latest-rounds table (changelogged) and
  whoever holds the partition next submits it again once the tables are recovered. Nothing is
  sent twice by a rebalance or a clean stop: the sends under way are recorded and flushed before
  a partition goes, and every plan and every send is checked against the ledger, which skips
  what was sent.
- Readiness: "joining the consumer group" until the group was joined once; then what the
  customers reader says (every customer of the partitions held read up to the topic's end when
  they were assigned).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable

from faust.types import TP


@dataclass
class Membership:
    """This worker in its consumer group, as the rebalance callbacks leave it."""

    partitions: set[int] = field(default_factory=set)   # partitions of rounds this worker holds
    joined: bool = False      # joined the group once (stays True across later rebalances)
    recovered: bool = False   # the tables are recovered for the partitions assigned now

    def held(self) -> set[int]:
        """The partitions of ``rounds`` (and so of the customers and the ledger) held here."""
        return set(self.partitions)

    def is_joined(self) -> bool:
        return self.joined

    def is_recovered(self) -> bool:
        return self.recovered


class Rebalance:
    def __init__(self, *, membership: Membership, rounds_topic: str, sender, views, holding, audience,
                 flush: Callable[[], Awaitable], spawn: Callable, customers_ready: Callable[[], tuple[bool, str]],
                 timeout: float, delivery=None) -> None:
        self.membership = membership
        self.rounds_topic = rounds_topic   # the name of the rounds topic
        self.sender = sender
        self.views = views
        self.holding = holding
        self.audience = audience
        self.flush = flush                 # flush the producer
        self.spawn = spawn
        self.customers_ready = customers_ready
        self.timeout = timeout             # how long the sends under way may take to finish
        self.delivery = delivery           # a ProcessDelivery: compose and send in helper processes

    def wire(self, app) -> None:
        app.on_partitions_revoked.connect(self.on_revoked)
        app.on_partitions_assigned.connect(self.on_assigned)
        app.on_rebalance_complete.connect(self.on_rebalance_complete)
        app.on_before_shutdown.connect(self.on_shutdown)

    async def on_shutdown(self, sender, **kwargs) -> None:
        """A clean stop finishes (and records) the sends under way and flushes them; what is still
        owed stays in the owed-rounds table, for whoever holds the partitions next."""
        await self.sender.stop(timeout=self.timeout)
        if self.delivery is not None:
            await self.delivery.close(timeout=self.timeout)
        await self.flush()

    # -- rebalancing: nothing waits for a fan-out, nothing owed is lost ----------------------
    # Round events are acknowledged as soon as the round is recorded as owed on its partition
    # (the latest-rounds table), so faust's rebalance never waits for a fan-out. On revocation
    # the sender sets the partitions' queued notices aside and waits only for the sends under
    # way (recorded in the ledger and flushed before the partitions go); on assignment it drops
    # what it set aside; once the tables are recovered, every round still owed on the partitions
    # held now is submitted again, and the ledger skips what was sent.
    async def on_revoked(self, sender, revoked: set[TP], **kwargs) -> None:
        mine = {tp.partition for tp in revoked if tp.topic == self.rounds_topic}
        await self.sender.hold(mine, timeout=self.timeout)
        await self.flush()

    async def on_assigned(self, sender, assigned: set[TP], **kwargs) -> None:
        now = {tp.partition for tp in assigned if tp.topic == self.rounds_topic}
        self.membership.recovered = False   # until the tables of the new assignment are recovered
        # Every partition is taken up as a new one, those held before the rebalance too: a worker
        # cut off from the group (its session expired in a broker outage) gets back the partitions
        # it held, but another worker may have held them in between, taken rounds off ``rounds``
        # and sent part of them. Its own queue, views and deadlines of them are stale; what the
        # tables say is not (measured: 17 contacts of a round the other worker took up and left
        # half-sent never got it, tests/integration/test_kafka_faults.py). The ledger skips what
        # was sent, so nothing goes twice.
        self.sender.drop(self.sender.held())
        self.views.drop()
        self.holding.drop(self.membership.partitions | now)
        # every partition, kept ones too: a rebalance pauses the reading of all, so a round decided
        # before it says nothing of latency (measured: one held 10 s by the rebalance after a broker
        # outage made the next round start 19 s before its time and overtake the late one)
        self.audience.assigned(now)
        self.membership.partitions = now

    async def on_rebalance_complete(self, sender, **kwargs) -> None:
        """The tables are recovered: take up what is owed on the partitions held now."""
        self.membership.joined = self.membership.recovered = True
        self.spawn(self.audience.resume(self.membership.held()))

    # -- readiness ---------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        """Ready once joined to the group, the tables recovered, and every customer of the
        partitions held read from the customers topic (up to its end when they were assigned)."""
        if not self.membership.joined:
            return False, "joining the consumer group"
        return self.customers_ready()
