"""Incidents: the incident agent (the single writer of an incident's state) and the schedule timer.

The agent reads ``incident-events`` and ``ticks`` on the incident's partition, applies them with
the domain's rules (``domain/incident.py``: ``decide`` for an event, ``keep_promise`` for a kept
promise), stores the new state and sends the round to every partition of ``rounds``. The timer,
on every worker for the incidents it owns, sends a tick when a promised time is near enough for
the contacts' own deadlines to come due (``domain/schedule.py``).

Runtime contract:
- Input: ``incident-events`` (keyed by ``incident_id``; the key must match it) and ``ticks``
  (written here by the timer), on the incident's partition: this agent is the only writer of an
  incident's state (the ``incidents`` table).
- Effect: an event or a tick that the rules turn into a round stores the new state, then sends
  the round to every partition of ``rounds`` (the audience agents there notify the customers
  they hold), then the event is acknowledged. A replay (the same ``event_id``, a tick for a
  promise already kept) decides no new round; if the state shows the current round may have
  been cut short by a crash, it is sent to every partition again (the audience agents and the
  ledger make that safe).
- A round on a scope under planned maintenance carries that maintenance (``Round.maintenance``, from
  the maintenance plans held on the incident's partition): its notices say so.
- Bad input (invalid JSON or fields, a key that is not the incident's id, an event the rules
  refuse) goes to the dead-letter topic with the reason; the stream goes on.
- The timer, on every worker for the incidents whose partition it holds, sends at most one tick
  per promised time slot (again after 10 s if nothing came of it); an incident it cannot judge
  is logged and skipped.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Callable, MutableMapping

from domain.incident import IncidentState, Round, Tick, current_round, decide, keep_promise, schedule_due
from domain.schedule import round_lead
from schemas import IncidentEvent, RecordError, parse_record
from streams import metrics as M
from streams.deadletter import record_key

log = logging.getLogger(__name__)


class IncidentDesk:
    def __init__(self, *, incidents: MutableMapping, ticks_topic, rounds_topic, partitions: int, dlq,
                 clock: Callable[[], datetime], joined: Callable[[], bool], owned: Callable[[], set[int]],
                 lead_seconds: float, latency, rate,
                 maintenance: Callable[[int, Round], list[dict]] | None = None) -> None:
        self.incidents = incidents         # the incidents table: incident_id -> its state
        self.ticks_topic = ticks_topic
        self.rounds_topic = rounds_topic
        self.partitions = partitions       # how many partitions ``rounds`` has
        self.dlq = dlq
        self.clock = clock
        self.joined = joined               # whether the worker joined its group once
        self.owned = owned                 # the partitions of ``incident-events`` held now
        self.lead_seconds = lead_seconds   # the schedule's base lead (OUTAGE_SCHEDULE_LEAD_SECONDS)
        self.latency = latency             # round decided -> seen by the audience agent (LatencyGauge)
        self.rate = rate                   # the sender's measured send rate (SendRate)
        self._ticked: dict[str, tuple[datetime, datetime]] = {}   # incident -> (slot, when its tick was sent)
        self.maintenance = maintenance     # (p, round) -> the planned maintenance under way on its scope

    async def agent(self, stream) -> None:
        async for event in stream.events():
            source = event.message.topic
            async with self.dlq.guard(event, source):
                now = self.clock()
                p = event.message.partition
                if source == self.ticks_topic.get_topic_name():
                    tick = Tick.model_validate_json(event.value)
                    state = self.state(p, tick.incident_id)
                    decision = keep_promise(state, tick.due, now, timedelta(seconds=tick.lead_seconds),
                                            timedelta(seconds=tick.send_seconds))
                    key = tick.incident_id
                    late = (now - tick.due).total_seconds()
                    if decision.round is not None and late > 0:
                        M.PROMISES_LATE.inc()
                        log.warning("incident %s: the round keeping the update promised for %s starts %.0fs "
                                    "late; the next is promised for %s", key, tick.due.isoformat(), late,
                                    decision.state.promised_at.isoformat(),
                                    extra={"incident": key, "round": decision.round.seq})
                    if decision.stretched:
                        M.PROMISES_STRETCHED.inc()
                        log.warning("incident %s: its audience takes about %.0fs to reach at the measured send rate, "
                                    "longer than its update interval allows; the next update is promised for %s",
                                    key, tick.send_seconds, decision.state.promised_at.isoformat(),
                                    extra={"incident": key})
                else:
                    ev = parse_record(IncidentEvent, event.value)
                    key = record_key(event)
                    if key is not None and key != ev.incident_id:
                        # the key decides the partition, and so which worker holds the incident
                        raise RecordError(f"record key {key!r} differs from incident_id", field="incident_id")
                    state = self.state(p, ev.incident_id)
                    decision = decide(state, ev, now)
                    key = ev.incident_id
                if decision.error:
                    raise RecordError(decision.error, field="incident_id")
                if decision.round is None:
                    log.info("incident event ignored: %s", decision.ignored, extra={"incident": key})
                    if decision.resend and state is not None:
                        await self.fan_out(current_round(state))  # a crash may have cut it short
                    continue
                self.incidents.partition(p).set(key, decision.state.model_dump(mode="json"))
                rnd = decision.round
                if self.maintenance is not None:   # its notices say so (streams/maintenance.py)
                    rnd = rnd.model_copy(update={"maintenance": self.maintenance(p, rnd)})
                await self.fan_out(rnd)
                M.ROUNDS.labels(decision.round.trigger).inc()
                log.info("round %s #%d (%s) decided; next update promised for %s", key, decision.round.seq,
                         decision.round.trigger, decision.round.next_update_at,
                         extra={"incident": key, "round": decision.round.seq})

    def state(self, p: int, incident_id: str) -> IncidentState | None:
        raw = self.incidents.partition(p).get(incident_id)
        return IncidentState.model_validate(raw) if raw else None

    async def fan_out(self, rnd: Round | None) -> None:
        """Send the round to every partition: each worker notifies the customers it holds."""
        if rnd is None:
            return
        value = rnd.model_dump_json().encode()
        key = rnd.incident_id.encode()
        for p in range(self.partitions):
            await self.rounds_topic.send(key=key, value=value, partition=p)

    async def schedule_timer(self) -> None:
        """Every worker, for the incidents it owns: tick when a promised time is near.

        Idempotent per time slot: the incident agent ignores a tick for a promise already kept.
        One incident that cannot be judged is logged and skipped: the timer goes on for the others
        (an exception escaping a faust timer stops the whole worker).
        """
        if not self.joined():
            return
        now = self.clock()
        active = 0
        held = [(p, incident_id, raw) for p in sorted(self.owned())
                for incident_id, raw in self.incidents.partition(p).items()]
        for p, incident_id, raw in held:
            if not raw or raw.get("resolved_at"):
                continue
            active += 1
            try:
                state = IncidentState.model_validate(raw)
                tick = self._tick(state, now)
                if tick is not None:
                    await self.ticks_topic.send(key=incident_id.encode(), value=tick.model_dump_json().encode(),
                                                partition=p)
            except Exception as exc:  # noqa: BLE001 - see the docstring
                log.error("schedule: incident %s skipped this time (%s)", incident_id, type(exc).__name__,
                          extra={"incident": incident_id})
                log.debug("traceback", exc_info=True)
        M.ACTIVE_INCIDENTS.set(active)
        M.SEND_RATE.set(self.rate.value if self.rate.measured else 0)

    def _tick(self, state: IncidentState, now: datetime) -> Tick | None:
        """The tick to send now for ``state``'s promise, if its scheduled round must be decided.

        The round is only decided here: each contact's holding update leaves by its own deadline
        (``streams/holding.py``), so the round is decided a little before the earliest of them
        can come due (``domain.schedule.round_lead``), whatever the audience's size."""
        if state.promised_at is None:
            return None
        lead = round_lead(state.interval(), base=timedelta(seconds=self.lead_seconds), latency=self.latency.value)
        due = schedule_due(state, now, lead)
        if due is None:
            return None
        last = self._ticked.get(state.incident_id)
        if last and last[0] == due and now - last[1] < timedelta(seconds=10):
            return None  # sent for this slot; resend only if nothing came of it
        self._ticked[state.incident_id] = (due, now)
        return Tick(incident_id=state.incident_id, due=due, lead_seconds=lead.total_seconds())
