"""Handing notices to an SMTP server: a pool of long-lived connections, one recipient per message.

- ``SmtpPool``: ``concurrency`` persistent ``aiosmtplib.SMTP`` clients, connected lazily and
  replaced after any failure. ``send()`` runs one mail transaction (MAIL, RCPT, DATA of the
  pre-built bytes, ONE recipient; aiosmtplib's ``sendmail()`` when an address needs parsing)
  and reports a ``SendResult``:
  accepted / permanent failure (a 5xx to MAIL, RCPT or DATA) / temporary failure (4xx,
  connection errors and timeouts). Every SMTP call is time-boxed by ``timeout``.
  Failures while connecting (greeting, EHLO, STARTTLS, AUTH) are the server's or the
  configuration's, not the address's: they count as temporary whatever their code.
  The pool does not retry with backoff: temporary failures are retried by the sender alone,
  under one policy (``domain/retry.py`` says why). Its only second try is immediate and on a
  fresh connection, when the kept-alive one it took turns out to have been closed by the
  server meanwhile (a disconnect, or a ``421`` closing reply): that is not a failed attempt.
- ``Mailer``: the interface the rest of the project depends on (``send`` only).
- ``MemoryMailer``: an in-memory fake that records what was sent, for unit tests.

At-least-once: a connection lost after the message data went out but before the server's
reply is reported temporary (and retried, at once when it was a kept-alive connection), so the
server may get it twice; that case cannot be told from a lost message. The caller's ledger
(keyed by Message-ID) is what keeps a notice from being sent twice across restarts.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import re
import ssl
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal, Protocol, runtime_checkable

import aiosmtplib
from aiosmtplib import (
    SMTPException,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPStatus,
    SMTPTimeoutError,
)

__all__ = [
    "ACCEPTED",
    "PERMANENT",
    "TEMPORARY",
    "SendResult",
    "Mailer",
    "SmtpPool",
    "SentMail",
    "MemoryMailer",
]

log = logging.getLogger(__name__)

ACCEPTED: Literal["accepted"] = "accepted"
PERMANENT: Literal["permanent"] = "permanent"
TEMPORARY: Literal["temporary"] = "temporary"
SendStatus = Literal["accepted", "permanent", "temporary"]
TlsMode = Literal["none", "starttls", "tls"]


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one message for one recipient.

    ``status``: ``accepted`` (the server took it: 250 to DATA), ``permanent`` (a 5xx reply to
    MAIL, RCPT or DATA, or an address that cannot be sent to: do not retry this address) or
    ``temporary`` (4xx replies, connection errors or timeouts: try again later, as the retry
    policy says). ``code`` is the last SMTP reply code (None when there was no reply:
    connection error, timeout); ``message`` the reply text or the error; ``attempts`` how many
    tries it took (1 from the pool; the sender counts its own retries); ``recipient_refused``: the
    reply refused the recipient (to RCPT), not the sender (MAIL) or the message (DATA).
    """

    status: SendStatus
    code: int | None = None
    message: str = ""
    attempts: int = 1
    recipient_refused: bool = False

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED

    @property
    def permanent(self) -> bool:
        return self.status == PERMANENT

    @property
    def temporary(self) -> bool:
        return self.status == TEMPORARY

    def describe(self) -> str:
        """One line for logs and dead letters, e.g. ``550 5.1.1 No such user (1 attempt)``."""
        reply = " ".join(part for part in (str(self.code) if self.code is not None else "", self.message) if part)
        plural = "" if self.attempts == 1 else "s"
        return f"{self.status}: {reply or 'no reply'} ({self.attempts} attempt{plural})"


@runtime_checkable
class Mailer(Protocol):
    """Anything that hands one message for one recipient to a mail system."""

    async def send(self, mail_from: str, rcpt: str, data: bytes) -> SendResult: ...


_ADDRESS = re.compile(r"[^\s<>\"']+@[^\s<>\"']+")


def scrub(text: str) -> str:
    """For logs: SMTP replies often quote the recipient; no address goes into a log line."""
    return _ADDRESS.sub("<address>", text)


_PLAIN_ADDRESS = re.compile(r"[!-~]+@[!-~]+")   # printable ASCII, no space: nothing to parse or quote
_NO_ENVELOPE = frozenset('<>()[],;:\\"')


def _envelope(address: str) -> bytes | None:
    """``<address>`` as MAIL/RCPT take it, for a plain address; None for anything else
    (names, brackets, non-ASCII), which goes through ``sendmail()``'s own parsing."""
    if _PLAIN_ADDRESS.fullmatch(address) and not _NO_ENVELOPE.intersection(address) and address.count("@") == 1:
        return b"<" + address.encode("ascii") + b">"
    return None


async def _plain_transaction(client: aiosmtplib.SMTP, sender: bytes, recipient: bytes, data: bytes) -> str:
    """MAIL, RCPT and DATA for one plain recipient: ``sendmail()`` without its address parsing
    (four ``parseaddr`` calls, a tenth of a notice's CPU in the benchmark's fan-out) and
    without a second line-ending pass for SIZE (the message builder writes CRLF already).
    Like ``sendmail()``: a refusal raises and resets the envelope. Returns DATA's reply."""
    try:
        options = (b"SIZE=%d" % len(data),) if client.supports_extension("size") else ()
        reply = await client.execute_command(b"MAIL", b"FROM:" + sender, *options, timeout=None)
        if reply.code != SMTPStatus.completed:
            raise SMTPSenderRefused(reply.code, reply.message, sender.decode())
        reply = await client.execute_command(b"RCPT", b"TO:" + recipient, timeout=None)
        if reply.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
            raise SMTPRecipientRefused(reply.code, reply.message, recipient.decode())
        return (await client.data(data, timeout=None)).message
    except SMTPResponseException:
        try:
            await client.rset(timeout=None)
        except (ConnectionError, SMTPResponseException):
            pass
        raise


def _by_code(code: int, message: str, recipient: bool = False) -> SendResult:
    return SendResult(PERMANENT if 500 <= code < 600 else TEMPORARY, code, message, recipient_refused=recipient)


class _Slot:
    """One of the pool's connections; ``client`` is None until first used or after a failure."""

    __slots__ = ("client", "uses")

    def __init__(self) -> None:
        self.client: aiosmtplib.SMTP | None = None
        self.uses = 0

    def discard(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # pragma: no cover - closing a broken transport
                pass
        self.client = None
        self.uses = 0


class SmtpPool:
    """``concurrency`` long-lived SMTP connections shared by concurrent ``send()`` calls."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1025,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: TlsMode = "none",
        concurrency: int = 8,
        timeout: float = 15.0,
        local_hostname: str | None = None,
        validate_certs: bool = True,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        tls = getattr(tls, "value", tls)  # accept core.settings.SmtpTls
        if tls not in ("none", "starttls", "tls"):
            raise ValueError(f"tls must be none, starttls or tls, not {tls!r}")
        if concurrency < 1 or timeout <= 0:
            raise ValueError("concurrency and timeout must be positive")
        self.host = host
        self.port = port
        self.tls: TlsMode = tls
        self.concurrency = concurrency
        self.timeout = timeout
        self._username = username
        self._password = password
        self._local_hostname = local_hostname
        self._validate_certs = validate_certs
        self._tls_context = tls_context
        self._slots: asyncio.LifoQueue[_Slot] | None = None
        self._all: list[_Slot] = []
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "SmtpPool":
        """A pool configured from ``core.settings.Settings`` (the OUTAGE_SMTP_* variables)."""
        password = settings.smtp_password
        if password is not None and hasattr(password, "get_secret_value"):
            password = password.get_secret_value()
        kwargs: dict[str, Any] = dict(
            username=settings.smtp_username,
            password=password,
            tls=getattr(settings.smtp_tls, "value", settings.smtp_tls),
            concurrency=settings.smtp_concurrency,
            timeout=getattr(settings, "smtp_timeout", 15.0),
        )
        kwargs.update(overrides)
        return cls(settings.smtp_host, settings.smtp_port, **kwargs)

    # -- connections ------------------------------------------------------------------------

    def _queue(self) -> asyncio.LifoQueue[_Slot]:
        if self._slots is None:
            # LIFO: the most recently used (warm) connection is reused first.
            self._slots = asyncio.LifoQueue()
            self._all = [_Slot() for _ in range(self.concurrency)]
            for slot in self._all:
                self._slots.put_nowait(slot)
        return self._slots

    def _new_client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self._username,
            password=self._password,
            local_hostname=self._local_hostname,
            timeout=self.timeout,
            use_tls=self.tls == "tls",
            start_tls=True if self.tls == "starttls" else False,
            validate_certs=self._validate_certs,
            tls_context=self._tls_context,
        )

    async def _connect(self, slot: _Slot) -> SendResult | None:
        """Connect ``slot`` if needed; a (temporary) result when that failed."""
        if slot.client is not None and slot.client.is_connected:
            return None
        slot.discard()
        client = self._new_client()
        try:
            async with asyncio.timeout(self.timeout):
                await client.connect()  # greeting, EHLO, STARTTLS and AUTH as configured
                if client.is_ehlo_or_helo_needed:  # (no STARTTLS nor AUTH: EHLO not sent yet)
                    try:
                        await client.ehlo()
                    except SMTPHeloError:
                        await client.helo()
        except SMTPResponseException as exc:
            client.close()
            return SendResult(TEMPORARY, exc.code, f"connect: {exc.message}")
        except (TimeoutError, SMTPTimeoutError):
            client.close()
            return SendResult(TEMPORARY, None, f"connect: timed out after {self.timeout:g} s")
        except (SMTPException, OSError) as exc:
            client.close()
            return SendResult(TEMPORARY, None, f"connect: {type(exc).__name__}: {exc}")
        slot.client = client
        return None

    async def _transaction(
        self, slot: _Slot, mail_from: str, rcpt: str, data: bytes
    ) -> tuple[SendResult, bool]:
        """One MAIL/RCPT/DATA on ``slot``'s connection; any doubt about the connection drops it.

        Returns the result and whether the connection turned out to be gone (closed by the
        server or the network, or a ``421``: the server closing it; as opposed to any other
        reply or a timeout).
        """
        client = slot.client
        assert client is not None
        sender, recipient = _envelope(mail_from), _envelope(rcpt)
        try:
            # the commands' own timeouts are off: this one bounds the whole transaction
            async with asyncio.timeout(self.timeout):
                if sender is None or recipient is None:  # unusual addresses: aiosmtplib parses them
                    errors, reply = await client.sendmail(mail_from, [rcpt], data, timeout=None)
                else:
                    errors, reply = {}, await _plain_transaction(client, sender, recipient, data)
        except SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            if refused.code == SMTPStatus.domain_unavailable:  # 421: the server is closing
                slot.discard()
                return SendResult(TEMPORARY, refused.code, refused.message), True
            return _by_code(refused.code, refused.message, recipient=True), False
        except SMTPResponseException as exc:  # MAIL, RCPT or DATA refused (RSET already sent)
            if exc.code == SMTPStatus.domain_unavailable:  # 421: the server is closing the connection
                slot.discard()
                return SendResult(TEMPORARY, exc.code, exc.message), True
            if isinstance(exc, SMTPRecipientRefused):
                return _by_code(exc.code, exc.message, recipient=True), False
            if exc.code == 503 or not 400 <= exc.code < 600:
                # The dialogue is out of step ("503 bad sequence") or the reply is no SMTP
                # code: about the connection, not the address; the next try gets a fresh one.
                slot.discard()
                return SendResult(TEMPORARY, exc.code, exc.message), False
            return _by_code(exc.code, exc.message), False
        except (TimeoutError, SMTPTimeoutError):
            slot.discard()
            return SendResult(TEMPORARY, None, f"timed out after {self.timeout:g} s"), False
        except (SMTPNotSupported, ValueError) as exc:
            # An address that cannot be put in an envelope (e.g. non-ASCII without SMTPUTF8).
            return SendResult(PERMANENT, None, f"{type(exc).__name__}: {exc}"), False
        except (SMTPServerDisconnected, ConnectionError) as exc:
            slot.discard()
            return SendResult(TEMPORARY, None, f"{type(exc).__name__}: {exc}"), True
        except (SMTPException, OSError) as exc:
            slot.discard()
            return SendResult(TEMPORARY, None, f"{type(exc).__name__}: {exc}"), False
        except BaseException:
            slot.discard()  # cancelled mid-dialogue: the connection's state is unknown
            raise
        slot.uses += 1
        if errors:  # not expected with one recipient; kept for completeness
            code, text = next(iter(errors.values()))
            return _by_code(code, text), False
        return SendResult(ACCEPTED, 250, reply), False

    async def _attempt(self, mail_from: str, rcpt: str, data: bytes) -> SendResult:
        queue = self._queue()
        slot = await queue.get()
        try:
            if self._closed:
                return SendResult(TEMPORARY, None, "pool closed")
            reused = slot.client is not None and slot.client.is_connected
            failed = await self._connect(slot)
            if failed is not None:
                return failed
            result, gone = await self._transaction(slot, mail_from, rcpt, data)
            if reused and gone:
                # A kept-alive connection the server had closed meanwhile: try once more at
                # once on a fresh one before this counts as a failed attempt. (Not a backoff:
                # the retry policy is the sender's.)
                failed = await self._connect(slot)
                if failed is not None:
                    return failed
                result, gone = await self._transaction(slot, mail_from, rcpt, data)
            return result
        finally:
            if self._closed:
                slot.discard()
            queue.put_nowait(slot)

    # -- public -----------------------------------------------------------------------------

    async def send(self, mail_from: str, rcpt: str, data: bytes) -> SendResult:
        """Hand ``data`` to the server for the one recipient ``rcpt``: one attempt (retrying a
        temporary failure is the caller's, under ``domain.retry.RetryPolicy``)."""
        if self._closed:
            raise RuntimeError("SmtpPool is closed")
        result = await self._attempt(mail_from, rcpt, data)
        if result.temporary:
            log.info("smtp: temporary failure (%s %s)", result.code, scrub(result.message))
        return result

    async def close(self) -> None:
        """QUIT every connection (waiting up to ``timeout`` for sends in flight). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._slots is None:
            return
        deadline = time.monotonic() + self.timeout
        taken: list[_Slot] = []
        for _ in range(len(self._all)):
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    taken.append(await self._slots.get())
            except TimeoutError:
                break
        for slot in taken:
            client = slot.client
            if client is not None and client.is_connected:
                try:
                    async with asyncio.timeout(min(self.timeout, 5.0)):
                        await client.quit()
                except (TimeoutError, SMTPException, OSError):
                    pass
            slot.discard()
        for slot in self._all:  # sends still out after the wait lose their connection now
            slot.discard()
        for slot in taken:  # wake any send still waiting for a slot: it sees the pool closed
            self._slots.put_nowait(slot)

    async def __aenter__(self) -> "SmtpPool":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# -- a fake for tests of other code -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentMail:
    mail_from: str
    rcpt: str
    data: bytes

    def message(self) -> EmailMessage:
        """The message parsed back (``email.policy.default``)."""
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class MemoryMailer:
    """A ``Mailer`` that keeps everything in memory.

    ``sent`` holds the accepted messages, in order; ``calls`` every ``send`` call. By default
    every message is accepted; ``refuse(rcpt)`` makes an address fail permanently (550),
    ``fail_next(rcpt, result, times)`` queues results for an address, and ``responder`` (if
    set) decides for any call it returns a result for.
    """

    sent: list[SentMail] = field(default_factory=list)
    calls: list[SentMail] = field(default_factory=list)
    responder: Callable[[str, str, bytes], SendResult | None] | None = None
    closed: bool = False
    _refused: dict[str, SendResult] = field(default_factory=dict, init=False, repr=False)
    _scripted: dict[str, deque[SendResult]] = field(
        default_factory=lambda: defaultdict(deque), init=False, repr=False
    )

    async def send(self, mail_from: str, rcpt: str, data: bytes) -> SendResult:
        if self.closed:
            raise RuntimeError("MemoryMailer is closed")
        mail = SentMail(mail_from, rcpt, bytes(data))
        self.calls.append(mail)
        result: SendResult | None = None
        if self.responder is not None:
            result = self.responder(mail_from, rcpt, data)
        if result is None and self._scripted.get(rcpt):
            result = self._scripted[rcpt].popleft()
        if result is None:
            result = self._refused.get(rcpt.lower())
        if result is None:
            result = SendResult(ACCEPTED, 250, "OK")
        if result.accepted:
            self.sent.append(mail)
        return result

    def refuse(self, rcpt: str, code: int = 550, message: str = "5.1.1 Mailbox unavailable") -> None:
        self._refused[rcpt.lower()] = SendResult(PERMANENT, code, message, recipient_refused=True)

    def fail_next(self, rcpt: str, result: SendResult | None = None, times: int = 1) -> None:
        result = result or SendResult(TEMPORARY, 451, "4.3.0 Try again later")
        self._scripted[rcpt].extend([result] * times)

    def messages(self, rcpt: str | None = None) -> list[EmailMessage]:
        return [m.message() for m in self.sent if rcpt is None or m.rcpt == rcpt]

    def clear(self) -> None:
        self.sent.clear()
        self.calls.clear()

    async def close(self) -> None:
        self.closed = True
