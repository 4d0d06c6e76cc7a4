"""Whether the brokers answer, for ``/readyz`` and the write API.

Through a broker outage a worker's faust consumer and producer wait and reconnect by themselves,
and say nothing of it: ``/readyz`` stayed 200 with the whole cluster unreachable, and a ``POST``
to the API waited for the producer (up to its 20-minute request timeout) while the HTTP client
gave up, and the event still went out when the cluster came back, so a client that tried again
declared the incident twice (measured on three paused Kafka nodes, tests/integration/test_kafka_faults.py).

This service asks the cluster for its metadata every ``PROBE_SECONDS`` (every broker it knows at
once, each request at most ``PROBE_TIMEOUT_SECONDS``); one answer from any broker is enough. With
no answer for ``UNREACHABLE_AFTER_SECONDS`` the brokers count as unreachable: ``/readyz`` answers
503 and the write API refuses at once with 503 (nothing is queued that could go out later), until
a broker answers again. One node down of three is not unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest
from mode import Service

from core.settings import Settings
from streams.kafka.broker import aiokafka_options, bootstrap

log = logging.getLogger(__name__)

PROBE_SECONDS = 1.0
PROBE_TIMEOUT_SECONDS = 3.0
UNREACHABLE_AFTER_SECONDS = 5.0


class BrokerReach(Service):
    def __init__(self, *, bootstrap_servers: list[str], security: dict | None = None,
                 interval: float = PROBE_SECONDS, timeout: float = PROBE_TIMEOUT_SECONDS,
                 after: float = UNREACHABLE_AFTER_SECONDS, clock: Callable[[], float] = time.monotonic,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.bootstrap_servers = list(bootstrap_servers)
        self.security = dict(security or {})
        self.interval, self.timeout, self.after = interval, timeout, after
        self.clock = clock
        self._last_answer = clock()   # from the start: not unreachable before a probe could tell
        self._client: AIOKafkaClient | None = None
        self._down_since: float | None = None   # the last answer before the current outage
        self._up_at: float | None = None        # when the last outage ended

    @classmethod
    def of(cls, settings: Settings, **kwargs) -> "BrokerReach":
        """The brokers and the credentials of ``settings``."""
        return cls(bootstrap_servers=bootstrap(settings), security=aiokafka_options(settings), **kwargs)

    # -- what the web answers from ---------------------------------------------------------------
    def silent_for(self) -> float:
        """Seconds since a broker last answered."""
        return max(0.0, self.clock() - self._last_answer)

    @property
    def reachable(self) -> bool:
        return self.silent_for() < self.after

    def outage_within(self, seconds: float) -> bool:
        """Whether the brokers were unreachable at some moment of the last ``seconds`` seconds (or
        are now): a record decided that long ago may have waited for them, so its delay says
        nothing of the pipeline's latency."""
        if self._down_since is not None:
            return True
        return self._up_at is not None and self.clock() - self._up_at < seconds

    def answered(self) -> None:
        """A broker answered just now."""
        if self._down_since is not None:
            log.warning("the brokers answer again after %.0fs unreachable", self.clock() - self._down_since)
            self._down_since = None
            self._up_at = self.clock()
        self._last_answer = self.clock()

    def check(self) -> None:
        """Note (once, in the log) that the brokers have become unreachable."""
        if self._down_since is None and not self.reachable:
            self._down_since = self._last_answer
            log.warning("no broker of %s has answered for %.0fs: /readyz answers 503 and the API refuses "
                        "writes until one does", ",".join(self.bootstrap_servers), self.silent_for())

    # -- probing -----------------------------------------------------------------------------------
    async def probe(self) -> bool:
        """Ask every known broker for the cluster's metadata at once; True when one answered."""
        client = self._client
        if client is None:
            client = AIOKafkaClient(bootstrap_servers=self.bootstrap_servers, client_id="outage-reach",
                                    request_timeout_ms=int(self.timeout * 1000), **self.security)
            try:
                await asyncio.wait_for(client.bootstrap(), self.timeout)
            except (KafkaError, OSError, asyncio.TimeoutError):
                await self._close(client)
                return False
            self._client = client
            return True   # the bootstrap itself read the metadata
        nodes = [b.nodeId for b in client.cluster.brokers()]
        if not nodes:
            await self._close(client)
            self._client = None
            return False
        answers = await asyncio.gather(*(self._ask(client, node) for node in nodes))
        return any(answers)

    async def _ask(self, client: AIOKafkaClient, node: int) -> bool:
        try:
            await asyncio.wait_for(client.send(node, MetadataRequest([])), self.timeout)
            return True
        except (KafkaError, OSError, asyncio.TimeoutError):
            return False

    @staticmethod
    async def _close(client: AIOKafkaClient) -> None:
        try:
            await client.close()
        except Exception:  # noqa: BLE001 - closing a client whose brokers are gone
            log.debug("reach: client close failed", exc_info=True)

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            started = self.clock()
            try:
                if await self.probe():
                    self.answered()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a probe that fails says only that nobody answered
                log.debug("reach: probe failed", exc_info=True)
            self.check()
            await self.sleep(max(0.0, self.interval - (self.clock() - started)))

    async def on_stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self._close(client)
