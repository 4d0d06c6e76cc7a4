"""A local SMTP capture with a page to read what was sent: the mail side of ``outage dev``.

``MailCapture`` runs, on the current asyncio loop, an SMTP server (aiosmtpd) that accepts every
message and a small web app (aiohttp) that shows them. Nothing is relayed anywhere.

Storage, in ``directory`` (created when missing):

- every message, byte for byte as received, in ``<UTC timestamp>-<n>.eml``
  (e.g. ``20261125T010000123Z-000042.eml``; ``n`` counts from 1 and goes on across restarts);
- ``index.jsonl``: one JSON object per message, in arrival order, with the keys ``n``, ``file``,
  ``received_at`` (RFC 3339, UTC), ``mail_from`` and ``recipients`` (the SMTP envelope),
  ``from``, ``to`` and ``subject`` (decoded from RFC 2047), ``message_id``, ``in_reply_to``,
  ``kind`` (``X-Outage-Notice``), ``incident`` (``X-Outage-Incident``), ``seq``
  (``X-Outage-Seq``) and ``size``. Missing headers are ``null``.

Web (``web_url``):

- ``GET /``: the outbox, newest first, refreshing itself; filters ``?to=`` (part of a recipient),
  ``?incident=``, ``?kind=``, ``?limit=`` (default 500), ``?refresh=`` (seconds, 0 = off);
- ``GET /message/{n}``: headers, text part, HTML part (in a sandboxed iframe);
  ``/message/{n}/html`` the HTML part alone (served with ``Content-Security-Policy: sandbox``),
  ``/message/{n}/raw`` the message source;
- ``GET /api/messages``: the index entries, oldest first, same filters as the outbox;
  ``GET /api/messages/{n}``: one entry plus ``headers`` (``[[name, value], ...]``), ``text``, ``html``.

Standalone: ``python -m devtools.capture --dir var/mail --smtp-port 1025 --web-port 8025``.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import re
import signal
from datetime import datetime, timezone
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from jinja2 import DictLoader, Environment

log = logging.getLogger("outage.capture")

INDEX_NAME = "index.jsonl"
FILE_RE = re.compile(r"^\d{8}T\d{9}Z-(\d+)\.eml$")


# --------------------------------------------------------------------------- parsing


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value).strip()


def _decode(value: Any) -> str | None:
    """A header value as text: RFC 2047 encoded words decoded, folding removed."""
    if value is None:
        return None
    text = _unfold(str(value))
    if "=?" in text:
        try:
            text = str(make_header(decode_header(text)))
        except Exception:  # an unknown charset: decode word by word, replacing what cannot be read
            try:
                text = "".join(_decode_chunk(chunk, charset) for chunk, charset in decode_header(text))
            except Exception:  # a broken encoded word: keep it as sent
                pass
    return text


def _decode_chunk(chunk: bytes | str, charset: str | None) -> str:
    if isinstance(chunk, str):
        return chunk
    try:
        return chunk.decode(charset or "ascii", errors="replace")
    except LookupError:
        return chunk.decode("utf-8", errors="replace")


def _headers(raw: bytes) -> Message:
    # compat32 keeps raw values (never raises on odd headers); _decode() does the RFC 2047 part.
    return BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)


def _parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def _part_text(part: Message) -> str:
    try:
        return part.get_content()  # type: ignore[attr-defined]
    except Exception:
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, errors="replace")
        except LookupError:
            return payload.decode("utf-8", errors="replace")


def _bodies(msg: EmailMessage) -> tuple[str | None, str | None]:
    """The first text/plain and the first text/html part that are not attachments."""
    text = html = None
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and text is None:
            text = _part_text(part)
        elif ctype == "text/html" and html is None:
            html = _part_text(part)
    return text, html


def _header_list(msg: Message) -> list[list[str]]:
    out = []
    for name, value in msg.items():
        try:
            out.append([name, _unfold(str(value))])
        except Exception:
            out.append([name, "(undecodable)"])
    return out


def _matches(entry: dict, to: str | None, incident: str | None, kind: str | None) -> bool:
    if incident and entry.get("incident") != incident:
        return False
    if kind and entry.get("kind") != kind:
        return False
    if to:
        needle = to.lower()
        hay = [*(entry.get("recipients") or []), entry.get("to") or ""]
        if not any(needle in h.lower() for h in hay):
            return False
    return True


# --------------------------------------------------------------------------- SMTP side


class _Handler:
    def __init__(self, capture: "MailCapture") -> None:
        self._capture = capture

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            entry = self._capture.store(envelope)
        except Exception:
            log.exception("could not store a captured message")
            return "451 Requested action aborted: local error in processing"
        return f"250 OK captured as {entry['n']}"


def _accept_any_login(server, session, envelope, mechanism, auth_data) -> AuthResult:
    # Development only: any user name and password are accepted, so that OUTAGE_SMTP_USERNAME
    # can be tried against the capture. Nothing is checked and nothing is relayed.
    return AuthResult(success=True)


class _QuietLoginData(logging.Filter):
    """aiosmtpd 1.4 warns "Session.login_data is deprecated" on every AUTH, from its own code."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in str(record.msg)


_QUIET = _QuietLoginData()


class _SMTP(SMTP):
    """aiosmtpd's protocol, remembering its open connections so that stop() can close them."""

    def __init__(self, *args: Any, connections: set, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections = connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._connections.add(transport)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self.transport is not None:
            self._connections.discard(self.transport)
        super().connection_lost(error)


# --------------------------------------------------------------------------- the capture


class MailCapture:
    def __init__(
        self,
        directory: Path,
        smtp_host: str = "127.0.0.1",
        smtp_port: int = 1025,
        web_host: str = "127.0.0.1",
        web_port: int = 8025,
    ) -> None:
        self.directory = Path(directory)
        self._smtp_host = smtp_host
        self._smtp_port_wanted = smtp_port
        self._web_host = web_host
        self._web_port_wanted = web_port
        self._smtp_port: int | None = None
        self._web_port: int | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.BaseTransport] = set()
        self._runner: web.AppRunner | None = None
        self._index_file = None
        self._entries: list[dict] = []
        self._by_n: dict[int, dict] = {}
        self._next_n = 1
        self._arrived = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("MailCapture already started")
        self.directory.mkdir(parents=True, exist_ok=True)
        aiosmtpd_log = logging.getLogger("mail.log")
        if _QUIET not in aiosmtpd_log.filters:
            aiosmtpd_log.addFilter(_QUIET)
        self._load_index()
        self._index_file = open(self.directory / INDEX_NAME, "a", encoding="utf-8")
        self._arrived = asyncio.Event()
        loop = asyncio.get_running_loop()
        handler = _Handler(self)

        def factory() -> SMTP:
            return _SMTP(
                handler,
                connections=self._connections,
                hostname="outage-capture.localhost",
                ident="outage mail capture",
                enable_SMTPUTF8=True,
                data_size_limit=64 * 1024 * 1024,
                auth_require_tls=False,
                authenticator=_accept_any_login,
                loop=loop,
            )

        try:
            self._server = await loop.create_server(factory, host=self._smtp_host, port=self._smtp_port_wanted)
            self._smtp_port = self._server.sockets[0].getsockname()[1]
            self._runner = web.AppRunner(self._app(), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self._web_host, self._web_port_wanted)
            await site.start()
            self._web_port = self._runner.addresses[0][1]
        except BaseException:
            await self.stop()
            raise
        log.info("mail capture: smtp://%s:%s, outbox %s", self._smtp_host, self._smtp_port, self.web_url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for transport in list(self._connections):
                transport.close()
            self._connections.clear()
            await self._server.wait_closed()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._index_file is not None:
            self._index_file.close()
            self._index_file = None

    async def __aenter__(self) -> "MailCapture":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # -- addresses ------------------------------------------------------------------------

    @property
    def smtp_port(self) -> int:
        """The bound SMTP port (the real one when 0 was asked for)."""
        return self._smtp_port if self._smtp_port is not None else self._smtp_port_wanted

    @property
    def web_port(self) -> int:
        return self._web_port if self._web_port is not None else self._web_port_wanted

    @property
    def web_url(self) -> str:
        host = self._web_host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.web_port}"

    # -- reading what was captured ----------------------------------------------------------

    def messages(self, *, to: str | None = None, incident: str | None = None, kind: str | None = None) -> list[dict]:
        """Index entries in arrival order, filtered like the outbox (copies)."""
        return [dict(e) for e in self._entries if _matches(e, to, incident, kind)]

    def path(self, n: int) -> Path:
        return self.directory / self._by_n[n]["file"]

    def message(self, n: int) -> EmailMessage:
        """Message ``n`` parsed with ``email.policy.default``."""
        return _parse(self.path(n).read_bytes())

    async def wait_for(
        self,
        count: int = 1,
        *,
        timeout: float = 10.0,
        to: str | None = None,
        incident: str | None = None,
        kind: str | None = None,
    ) -> list[dict]:
        """Wait until at least ``count`` messages match the filters; return those that match."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.messages(to=to, incident=incident, kind=kind)
            if len(found) >= count:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"{len(found)} of {count} messages (to={to!r}, incident={incident!r}, kind={kind!r}) "
                    f"after {timeout} s; {len(self._entries)} captured in all"
                )
            event = self._arrived
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass

    # -- storage --------------------------------------------------------------------------

    def _load_index(self) -> None:
        self._entries, self._by_n = [], {}
        index = self.directory / INDEX_NAME
        if index.exists():
            with open(index, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                        n = int(entry["n"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line after a crash
                    self._entries.append(entry)
                    self._by_n[n] = entry
        highest = max(self._by_n, default=0)
        for p in self.directory.glob("*.eml"):  # files written whose index line was lost
            m = FILE_RE.match(p.name)
            if m:
                highest = max(highest, int(m.group(1)))
        self._next_n = highest + 1

    def store(self, envelope: Envelope) -> dict:
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content or "").encode()
        now = datetime.now(timezone.utc)
        n = self._next_n
        self._next_n += 1
        name = f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{n:06d}.eml"
        tmp = self.directory / (name + ".tmp")
        tmp.write_bytes(raw)
        os.replace(tmp, self.directory / name)  # readers never see half a message

        h = _headers(raw)
        seq = _decode(h.get("X-Outage-Seq"))
        entry = {
            "n": n,
            "file": name,
            "received_at": now.isoformat(timespec="milliseconds"),
            "mail_from": envelope.mail_from,
            "recipients": list(envelope.rcpt_tos),
            "from": _decode(h.get("From")),
            "to": _decode(h.get("To")),
            "subject": _decode(h.get("Subject")),
            "message_id": _decode(h.get("Message-ID")),
            "in_reply_to": _decode(h.get("In-Reply-To")),
            "kind": _decode(h.get("X-Outage-Notice")),
            "incident": _decode(h.get("X-Outage-Incident")),
            "seq": int(seq) if seq and seq.isdigit() else seq,
            "size": len(raw),
        }
        assert self._index_file is not None
        self._index_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._index_file.flush()
        self._entries.append(entry)
        self._by_n[n] = entry
        # wake every waiter, then arm a fresh event for the next message
        self._arrived.set()
        self._arrived = asyncio.Event()
        return entry

    # -- web ------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[_security_headers])
        app.router.add_get("/", self._h_outbox)
        app.router.add_get(r"/message/{n:\d+}", self._h_message)
        app.router.add_get(r"/message/{n:\d+}/html", self._h_message_html)
        app.router.add_get(r"/message/{n:\d+}/raw", self._h_message_raw)
        app.router.add_get("/api/messages", self._h_api_list)
        app.router.add_get(r"/api/messages/{n:\d+}", self._h_api_message)
        return app

    def _filters(self, request: web.Request) -> dict:
        q = request.query
        return {k: (q.get(k) or "").strip() or None for k in ("to", "incident", "kind")}

    def _entry(self, request: web.Request) -> dict:
        entry = self._by_n.get(int(request.match_info["n"]))
        if entry is None:
            raise web.HTTPNotFound(text="no such message")
        return entry

    def _detail(self, entry: dict) -> dict:
        raw = (self.directory / entry["file"]).read_bytes()
        try:
            msg = _parse(raw)
            headers = _header_list(msg)
            text, html = _bodies(msg)
        except Exception as exc:  # show the source rather than fail the page
            headers, text, html = [], f"(could not parse: {exc})\n\n" + raw.decode("utf-8", "replace"), None
        return {**entry, "headers": headers, "text": text, "html": html}

    async def _h_outbox(self, request: web.Request) -> web.Response:
        f = self._filters(request)
        limit = _int(request.query.get("limit"), 500)
        refresh = _int(request.query.get("refresh"), 5)
        matching = [e for e in self._entries if _matches(e, **f)]
        shown = matching[::-1][:limit] if limit > 0 else matching[::-1]
        body = _env.get_template("outbox").render(
            messages=shown,
            matching=len(matching),
            total=len(self._entries),
            f={k: v or "" for k, v in f.items()},
            kinds=sorted({e["kind"] for e in self._entries if e.get("kind")}),
            incidents=sorted({e["incident"] for e in self._entries if e.get("incident")}),
            refresh=refresh,
            smtp=f"{self._smtp_host}:{self.smtp_port}",
        )
        return web.Response(text=body, content_type="text/html")

    async def _h_message(self, request: web.Request) -> web.Response:
        m = self._detail(self._entry(request))
        body = _env.get_template("message").render(m=m)
        return web.Response(text=body, content_type="text/html")

    async def _h_message_html(self, request: web.Request) -> web.Response:
        m = self._detail(self._entry(request))
        if m["html"] is None:
            raise web.HTTPNotFound(text="this message has no HTML part")
        return web.Response(
            text=m["html"],
            content_type="text/html",
            headers={"Content-Security-Policy": "sandbox allow-popups allow-popups-to-escape-sandbox"},
        )

    async def _h_message_raw(self, request: web.Request) -> web.Response:
        raw = (self.directory / self._entry(request)["file"]).read_bytes()
        return web.Response(text=raw.decode("utf-8", "replace"), content_type="text/plain")

    async def _h_api_list(self, request: web.Request) -> web.Response:
        f = self._filters(request)
        found = self.messages(**f)
        limit = _int(request.query.get("limit"), 0)
        if limit > 0:
            found = found[-limit:]
        return web.json_response(found, dumps=_dumps)

    async def _h_api_message(self, request: web.Request) -> web.Response:
        return web.json_response(self._detail(self._entry(request)), dumps=_dumps)


def _int(value: str | None, default: int) -> int:
    try:
        return max(0, int(value)) if value is not None and value != "" else default
    except ValueError:
        return default


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


@web.middleware
async def _security_headers(request: web.Request, handler):
    resp = await handler(request)
    resp.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; form-action 'self'",
    )
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    return resp


# --------------------------------------------------------------------------- templates

_CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d0d7de; --bg:#f6f8fa; --link:#0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Hiragino Sans", "Noto Sans JP", sans-serif; color: var(--fg); background: #fff; }
header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; padding: .8rem 1.2rem; border-bottom: 1px solid var(--line); background: var(--bg); }
header h1 { font-size: 1.2rem; margin: 0; }
main { padding: 1rem 1.2rem; }
a { color: var(--link); text-decoration: none; } a:hover { text-decoration: underline; }
.muted { color: var(--muted); }
form.filters { display: flex; gap: .8rem; flex-wrap: wrap; align-items: end; margin-bottom: 1rem; }
form.filters label { display: flex; flex-direction: column; font-size: .8rem; color: var(--muted); }
input, select, button { font: inherit; padding: .25rem .4rem; border: 1px solid var(--line); border-radius: 4px; }
button { background: var(--fg); color: #fff; cursor: pointer; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: .75rem; text-transform: uppercase; letter-spacing: .03em; color: var(--muted); background: var(--bg); position: sticky; top: 0; }
td.num, td.time { white-space: nowrap; font-variant-numeric: tabular-nums; color: var(--muted); }
td.subject { max-width: 40rem; }
.empty { text-align: center; color: var(--muted); padding: 2rem; }
.kind { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .75rem; background: #eaeef2; white-space: nowrap; }
.k-acknowledged { background: #ffebe9; color: #a40e26; }
.k-progress { background: #fff8c5; color: #7d4e00; }
.k-scheduled { background: #ddf4ff; color: #0550ae; }
.k-resolved { background: #dafbe1; color: #116329; }
.k-unaffected { background: #eaeef2; color: #424a53; }
.k-ticket-ack { background: #fbefff; color: #6e40c9; }
dl.headers { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: 0 0 1rem; font-size: .85rem; }
dl.headers dt { color: var(--muted); } dl.headers dd { margin: 0; word-break: break-all; }
h2 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
pre { white-space: pre-wrap; word-wrap: break-word; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: .8rem; margin: 0; font: 13px/1.5 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
iframe { width: 100%; height: 640px; border: 1px solid var(--line); border-radius: 6px; resize: vertical; background: #fff; }
"""

_TEMPLATES = {
    "base": """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{% block head %}{% endblock %}
<style>{{ css }}</style>
</head><body>{% block body %}{% endblock %}</body></html>
""",
    "outbox": """{% extends "base" %}
{% block head %}<title>Outbox ({{ total }})</title>
{% if refresh %}<meta http-equiv="refresh" content="{{ refresh }}">{% endif %}{% endblock %}
{% block body %}
<header><h1>Outbox</h1>
<span class="muted">{{ total }} captured{% if matching != total %}, {{ matching }} matching{% endif %} · SMTP {{ smtp }}{% if refresh %} · refreshes every {{ refresh }} s{% endif %}</span></header>
<main>
<form class="filters" method="get" action="/">
  <label>Recipient <input name="to" value="{{ f.to }}" placeholder="part of an address"></label>
  <label>Incident <input name="incident" value="{{ f.incident }}" list="incidents" placeholder="inc-…"></label>
  <label>Kind <select name="kind"><option value="">any</option>
    {% for k in kinds %}<option value="{{ k }}"{% if k == f.kind %} selected{% endif %}>{{ k }}</option>{% endfor %}
  </select></label>
  <button type="submit">Filter</button>
  {% if f.to or f.incident or f.kind %}<a href="/">clear</a>{% endif %}
</form>
<datalist id="incidents">{% for i in incidents %}<option value="{{ i }}">{% endfor %}</datalist>
<table>
<thead><tr><th>#</th><th>Received (UTC)</th><th>Recipient</th><th>Subject</th><th>Kind</th><th>Incident</th></tr></thead>
<tbody>
{% for m in messages %}
<tr>
  <td class="num"><a href="/message/{{ m.n }}">{{ m.n }}</a></td>
  <td class="time" title="{{ m.received_at }}">{{ m.received_at[:19] | replace("T", " ") }}</td>
  <td>{{ (m.recipients or [m.to]) | join(", ") }}</td>
  <td class="subject"><a href="/message/{{ m.n }}">{{ m.subject or "(no subject)" }}</a></td>
  <td>{% if m.kind %}<span class="kind {{ kind_class(m.kind) }}">{{ m.kind }}</span>{% else %}<span class="muted">—</span>{% endif %}</td>
  <td>{% if m.incident %}<a href="/?incident={{ m.incident | urlencode }}">{{ m.incident }}</a>{% if m.seq is not none %} <span class="muted">#{{ m.seq }}</span>{% endif %}{% endif %}</td>
</tr>
{% else %}
<tr><td colspan="6" class="empty">No messages{% if f.to or f.incident or f.kind %} match these filters{% else %} yet{% endif %}.</td></tr>
{% endfor %}
</tbody></table>
</main>
{% endblock %}
""",
    "message": """{% extends "base" %}
{% block head %}<title>{{ m.subject or "(no subject)" }} · Outbox</title>{% endblock %}
{% block body %}
<header><h1>{{ m.subject or "(no subject)" }}</h1>
<a href="/">← Outbox</a>
{% if m.incident %}<a href="/?incident={{ m.incident | urlencode }}">all of {{ m.incident }}</a>{% endif %}
<a href="/message/{{ m.n }}/raw">source</a>
{% if m.html is not none %}<a href="/message/{{ m.n }}/html" target="_blank" rel="noopener">HTML alone</a>{% endif %}
</header>
<main>
<dl class="headers">
  <dt>Envelope</dt><dd>{{ m.mail_from }} → {{ m.recipients | join(", ") }} · {{ m.received_at }} · {{ m.size }} bytes</dd>
  {% for name, value in m.headers %}<dt>{{ name }}</dt><dd>{{ value }}</dd>{% endfor %}
</dl>
<h2>Text part</h2>
{% if m.text is not none %}<pre>{{ m.text }}</pre>{% else %}<p class="muted">No text part.</p>{% endif %}
<h2>HTML part</h2>
{% if m.html is not none %}<iframe title="HTML part" sandbox="allow-popups allow-popups-to-escape-sandbox" srcdoc="{{ m.html }}"></iframe>
{% else %}<p class="muted">No HTML part.</p>{% endif %}
</main>
{% endblock %}
""",
}


def _kind_class(kind: str | None) -> str:
    return "k-" + kind if kind and re.fullmatch(r"[a-z][a-z0-9-]*", kind) else "k-other"


_env = Environment(loader=DictLoader(_TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True)
_env.globals.update(css=_CSS, kind_class=_kind_class)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.capture", description="Local SMTP capture with an outbox page.")
    p.add_argument("--dir", default="var/mail", type=Path, help="where messages are stored (default var/mail)")
    p.add_argument("--smtp-host", default="127.0.0.1")
    p.add_argument("--smtp-port", default=1025, type=int)
    p.add_argument("--web-host", default="127.0.0.1")
    p.add_argument("--web-port", default=8025, type=int)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection at INFO

    async def run() -> None:
        capture = MailCapture(args.dir, args.smtp_host, args.smtp_port, args.web_host, args.web_port)
        await capture.start()
        print(f"SMTP   smtp://{args.smtp_host}:{capture.smtp_port}", flush=True)
        print(f"Outbox {capture.web_url}/   (messages in {args.dir})", flush=True)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stopping.set)
            except (NotImplementedError, RuntimeError):
                pass
        try:
            await stopping.wait()
        finally:
            await capture.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
