"""SmtpPool against a real SMTP server (aiosmtpd), on free loopback ports.

Each test starts its own servers through the ``servers`` fixture, which stops exactly those.
The pool makes one attempt per send (the sender retries, under domain/retry.py); its only
second try is at once, on a fresh connection, when a kept-alive one turns out to be closed.
"""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from email.policy import default

import pytest
from aiosmtpd.controller import Controller

from notifiers.smtp import ACCEPTED, PERMANENT, TEMPORARY, Mailer, MemoryMailer, SendResult, SmtpPool

pytestmark = pytest.mark.integration

FROM = "status@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message(rcpt: str, n: int = 0) -> bytes:
    return (
        f"From: {FROM}\r\nTo: {rcpt}\r\nSubject: test {n}\r\nMessage-ID: <m{n}.{rcpt}>\r\n"
        f"\r\nbody {n}\r\n"
    ).encode()


class Handler:
    """Records accepted messages; can refuse recipients, defer DATA, or stall."""

    def __init__(self, *, refuse: tuple[str, ...] = (), defer_data: int = 0, stall: float = 0.0,
                 refuse_sender: int = 0, defer_reply: str = "451 4.3.0 Try again later",
                 closing_mail: tuple[int, ...] = ()) -> None:
        self.defer_reply = defer_reply
        self.closing_mail = set(closing_mail)  # these MAIL commands (1 = the first) get a 421
        self.refuse = set(refuse)
        self.refuse_sender = refuse_sender  # this many MAIL commands get a 550
        self.mail_calls = 0
        self.mails: list[tuple[str, list[str]]] = []  # (sender, options) of each MAIL
        self.rsets = 0
        self.defer_data = defer_data
        self.stall = stall
        self.data_calls = 0
        self.received: list[tuple[str, list[str], bytes]] = []
        self.peers: set = set()
        self._lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mail_calls += 1
        self.mails.append((address, list(mail_options)))
        if self.mail_calls <= self.refuse_sender:
            return "550 5.7.1 Sender not allowed"
        if self.mail_calls in self.closing_mail:
            return "421 4.4.2 Idle timeout exceeded, closing connection"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):
        self.rsets += 1
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.data_calls += 1
            n = self.data_calls
        if n <= self.defer_data:
            return self.defer_reply
        if self.stall:
            await asyncio.sleep(self.stall)
        with self._lock:
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            self.peers.add(session.peer)
        return "250 2.0.0 Message accepted for delivery"


@pytest.fixture
def servers():
    """Factory: ``await servers(handler, port=None)`` starts an aiosmtpd Controller on 127.0.0.1.

    ``stop(controller)`` stops one early; the rest are stopped at the end of the test.
    """
    running: list[Controller] = []

    async def start(handler: Handler, port: int | None = None) -> Controller:
        controller = Controller(handler, hostname="127.0.0.1", port=port or free_port())
        await asyncio.to_thread(controller.start)
        running.append(controller)
        return controller

    async def stop(controller: Controller) -> None:
        running.remove(controller)
        await asyncio.to_thread(controller.stop)

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for controller in running:
        controller.stop()


def pool(port: int, **kw) -> SmtpPool:
    kw.setdefault("concurrency", 4)
    kw.setdefault("timeout", 5.0)
    return SmtpPool("127.0.0.1", port, **kw)


async def test_messages_arrive_over_a_few_reused_connections(servers):
    handler = Handler()
    server = await servers(handler)
    async with pool(server.port, concurrency=3) as p:
        rcpts = [f"user{i}@example.net" for i in range(30)]
        results = await asyncio.gather(*(p.send(FROM, r, message(r, i)) for i, r in enumerate(rcpts)))
    assert all(r.status == ACCEPTED and r.accepted and r.attempts == 1 for r in results)
    assert all(r.code == 250 for r in results)
    assert len(handler.received) == 30
    assert sorted(rcpt for _, (rcpt,), _ in handler.received) == sorted(rcpts)
    assert all(mail_from == FROM for mail_from, _, _ in handler.received)
    assert len(handler.peers) <= 3  # three long-lived connections, not one per message
    first = email.message_from_bytes(handler.received[0][2], policy=default)
    assert first["From"] == FROM


async def test_a_451_comes_back_at_once_as_temporary_and_the_connection_serves_on(servers):
    # no backoff inside the pool: the one connection is free again as soon as the reply is in
    handler = Handler(defer_data=2)
    server = await servers(handler)
    async with pool(server.port, concurrency=1) as p:
        started = asyncio.get_running_loop().time()
        first, second = [await p.send(FROM, "ops@example.net", message("ops@example.net")) for _ in range(2)]
        other = await p.send(FROM, "b@example.net", message("b@example.net"))
        elapsed = asyncio.get_running_loop().time() - started
    assert first.temporary and first.code == 451 and first.attempts == 1
    assert second.temporary and second.attempts == 1
    assert other.accepted
    assert handler.data_calls == 3 and len(handler.received) == 1
    assert len(handler.peers) == 1  # a 4xx to DATA says nothing against the connection
    assert elapsed < 1.0


async def test_a_reply_quoting_the_address_is_logged_without_it(servers, caplog):
    handler = Handler(defer_data=5, defer_reply="451 4.2.2 <ops@example.net>: mailbox full")
    server = await servers(handler)
    with caplog.at_level("INFO", logger="notifiers.smtp"):
        async with pool(server.port) as p:
            result = await p.send(FROM, "ops@example.net", message("ops@example.net"))
    assert result.temporary and "ops@example.net" in result.message  # kept for the dead letter
    logged = [r.getMessage() for r in caplog.records if r.name == "notifiers.smtp"]
    assert logged and any("mailbox full" in line for line in logged)
    assert not any("ops@example.net" in line for line in logged)


async def test_550_for_one_recipient_is_permanent_and_others_still_go(servers):
    handler = Handler(refuse=("gone@example.net",))
    server = await servers(handler)
    async with pool(server.port, concurrency=2) as p:
        rcpts = ["a@example.net", "gone@example.net", "b@example.net", "c@example.net"]
        results = dict(zip(rcpts, await asyncio.gather(*(p.send(FROM, r, message(r)) for r in rcpts))))
        # The connection that saw the refusal is still good for the next message.
        again = await p.send(FROM, "d@example.net", message("d@example.net"))
    bad = results.pop("gone@example.net")
    assert bad.status == PERMANENT and bad.permanent and not bad.accepted
    assert bad.code == 550 and "No such user" in bad.message
    assert bad.attempts == 1  # 5xx: no retry
    assert "550" in bad.describe()
    assert all(r.accepted for r in results.values()) and again.accepted
    assert sorted(rcpt for _, (rcpt,), _ in handler.received) == [
        "a@example.net", "b@example.net", "c@example.net", "d@example.net"]


async def test_a_refused_sender_is_permanent_resets_the_envelope_and_keeps_the_connection(servers):
    handler = Handler(refuse_sender=1)
    server = await servers(handler)
    async with pool(server.port, concurrency=1) as p:
        refused = await p.send(FROM, "a@example.net", message("a@example.net"))
        accepted = await p.send(FROM, "b@example.net", message("b@example.net"))
    assert refused.permanent and refused.code == 550 and "Sender not allowed" in refused.message
    assert handler.rsets == 1
    assert accepted.accepted
    assert [rcpt for _, (rcpt,), _ in handler.received] == ["b@example.net"]
    assert len(handler.peers) == 1


async def test_plain_and_unusual_addresses_both_reach_the_server_with_the_size_announced(servers):
    # A plain address is put in the envelope as it is; one that needs parsing (a quoted local
    # part) goes through aiosmtplib's sendmail(). Both arrive, with the right envelope.
    handler = Handler()
    server = await servers(handler)
    odd = '"first last"@example.net'
    async with pool(server.port, concurrency=1) as p:
        results = [await p.send(FROM, r, message(r)) for r in ("plain@example.net", odd)]
    assert all(r.accepted for r in results)
    assert [options for _, options in handler.mails] == [
        [f"SIZE={len(message('plain@example.net'))}"], [f"SIZE={len(message(odd))}"]]
    assert [(mail_from, rcpt) for mail_from, (rcpt,), _ in handler.received] == [
        (FROM, "plain@example.net"), (FROM, odd)]


def test_the_envelope_of_an_address():
    from notifiers.smtp import _envelope

    assert _envelope("ops@example.net") == b"<ops@example.net>"
    for unusual in ('"a b"@example.net', "Ops <ops@example.net>", "ops@example.net>", "オペ@example.jp",
                    "ops", "a@b@example.net", "ops@example.net\r\nRCPT TO:<x@y>", " ops@example.net"):
        assert _envelope(unusual) is None, unusual


async def test_server_down_is_a_temporary_failure_at_once_and_the_next_send_connects(servers):
    port = free_port()  # nothing listens here yet
    handler = Handler()
    async with pool(port) as p:
        started = asyncio.get_running_loop().time()
        down = await p.send(FROM, "ops@example.net", message("ops@example.net"))
        assert asyncio.get_running_loop().time() - started < 1.0  # no waiting inside the pool
        await servers(handler, port=port)
        up = await p.send(FROM, "ops@example.net", message("ops@example.net"))
    assert down.status == TEMPORARY and down.temporary and down.attempts == 1
    assert down.code is None and "connect" in down.message
    assert up.accepted and up.attempts == 1
    assert len(handler.received) == 1


async def test_a_stalled_server_is_time_boxed_and_the_connection_replaced(servers):
    handler = Handler(stall=3.0)
    server = await servers(handler)
    async with pool(server.port, timeout=0.5) as p:
        started = asyncio.get_running_loop().time()
        result = await p.send(FROM, "ops@example.net", message("ops@example.net"))
        assert asyncio.get_running_loop().time() - started < 1.5  # one time-boxed attempt
        assert result.temporary and result.code is None and "timed out" in result.message
        assert result.attempts == 1
        handler.stall = 0.0
        result = await p.send(FROM, "ops@example.net", message("ops@example.net", 2))
    assert result.accepted


async def test_a_connection_dropped_while_idle_is_replaced_without_a_failed_attempt(servers):
    port = free_port()
    first, second = Handler(), Handler()
    server = await servers(first, port=port)
    async with pool(port, concurrency=1) as p:
        assert (await p.send(FROM, "a@example.net", message("a@example.net"))).accepted
        await servers.stop(server)  # the kept-alive connection goes away
        await servers(second, port=port)
        result = await p.send(FROM, "b@example.net", message("b@example.net"))
    assert result.accepted and result.attempts == 1
    assert len(first.received) == 1 and len(second.received) == 1


async def test_a_kept_alive_connection_found_dead_on_use_is_replaced_at_once(servers):
    # The server dropped the idle connection and the client only learns it when it speaks.
    from aiosmtplib import SMTPServerDisconnected

    handler = Handler()
    server = await servers(handler)
    async with pool(server.port, concurrency=1) as p:
        assert (await p.send(FROM, "a@example.net", message("a@example.net"))).accepted
        (slot,) = p._all
        stale = slot.client

        async def dead(*args, **kwargs):
            raise SMTPServerDisconnected("Connection lost")

        stale.execute_command = dead  # the first thing the transaction says
        started = asyncio.get_running_loop().time()
        result = await p.send(FROM, "b@example.net", message("b@example.net"))
        assert asyncio.get_running_loop().time() - started < 2.0  # no backoff sleep
        assert slot.client is not stale
    assert result.accepted and result.attempts == 1
    assert [rcpt for _, (rcpt,), _ in handler.received] == ["a@example.net", "b@example.net"]


async def test_a_kept_alive_connection_the_server_closes_with_421_is_replaced_at_once(servers):
    # e.g. Postfix after its idle timeout: the 421 waits on the socket and answers the next MAIL
    handler = Handler(closing_mail=(2,))
    server = await servers(handler)
    async with pool(server.port, concurrency=1) as p:
        assert (await p.send(FROM, "a@example.net", message("a@example.net"))).accepted
        result = await p.send(FROM, "b@example.net", message("b@example.net"))
    assert result.accepted and result.attempts == 1
    assert handler.mail_calls == 3 and len(handler.peers) == 2  # the second try on a new connection
    assert [rcpt for _, (rcpt,), _ in handler.received] == ["a@example.net", "b@example.net"]


async def test_a_421_on_a_fresh_connection_is_one_temporary_failure(servers):
    # no second try at once: the server is not taking mail; the retry policy decides when
    handler = Handler(closing_mail=(1,))
    server = await servers(handler)
    async with pool(server.port, concurrency=1) as p:
        refused = await p.send(FROM, "a@example.net", message("a@example.net"))
        (slot,) = p._all
        assert slot.client is None  # dropped: the server said it is closing it
        accepted = await p.send(FROM, "a@example.net", message("a@example.net"))
    assert refused.temporary and refused.code == 421 and refused.attempts == 1
    assert handler.mail_calls == 2 and accepted.accepted


async def test_close_quits_and_refuses_further_sends(servers):
    handler = Handler()
    server = await servers(handler)
    p = pool(server.port)
    assert (await p.send(FROM, "a@example.net", message("a@example.net"))).accepted
    await p.close()
    await p.close()  # idempotent
    with pytest.raises(RuntimeError):
        await p.send(FROM, "b@example.net", message("b@example.net"))


async def test_from_settings():
    from core.settings import Settings

    settings = Settings.from_env(smtp_host="127.0.0.1", smtp_port=2525, smtp_tls="starttls",
                                 smtp_concurrency=3, smtp_username="u", smtp_password="p")
    p = SmtpPool.from_settings(settings)
    assert (p.host, p.port, p.tls, p.concurrency) == ("127.0.0.1", 2525, "starttls", 3)
    await p.close()
    with pytest.raises(ValueError):
        SmtpPool(tls="ssl")  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # no retry settings of its own: the policy is the sender's
        SmtpPool(max_attempts=3)  # type: ignore[call-arg]


# -- the fake ----------------------------------------------------------------------------------


async def test_memory_mailer_records_and_scripts_results():
    mailer = MemoryMailer()
    assert isinstance(mailer, Mailer) and isinstance(SmtpPool(), Mailer)
    mailer.refuse("gone@example.net")
    mailer.fail_next("slow@example.net", times=2)
    assert (await mailer.send(FROM, "a@example.net", message("a@example.net"))).accepted
    refused = await mailer.send(FROM, "gone@example.net", message("gone@example.net"))
    assert refused.permanent and refused.code == 550
    assert (await mailer.send(FROM, "slow@example.net", message("slow@example.net"))).temporary
    assert (await mailer.send(FROM, "slow@example.net", message("slow@example.net"))).temporary
    assert (await mailer.send(FROM, "slow@example.net", message("slow@example.net"))).accepted
    assert [m.rcpt for m in mailer.sent] == ["a@example.net", "slow@example.net"]
    assert len(mailer.calls) == 5
    assert mailer.messages("a@example.net")[0]["Subject"] == "test 0"
    mailer.responder = lambda f, r, d: SendResult(PERMANENT, 554, "rejected") if r.startswith("x") else None
    assert (await mailer.send(FROM, "x@example.net", b"")).permanent
    await mailer.close()
    with pytest.raises(RuntimeError):
        await mailer.send(FROM, "a@example.net", b"")
