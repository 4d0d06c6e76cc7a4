"""The local mail capture of `outage dev`: SMTP in, files + index + outbox page + JSON out."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import aiosmtplib
import pytest

from devtools.capture import INDEX_NAME, MailCapture

pytestmark = pytest.mark.integration

JA_SUBJECT = "【障害】APIのエラー <script>alert(1)</script>"


def _plain() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "status@example.com"
    msg["To"] = "ops@example.net"
    msg["Subject"] = "API errors <script>alert('x')</script>"
    msg["Message-ID"] = "<inc-7.1.acknowledged.c-1.0@example.com>"
    msg["X-Outage-Notice"] = "acknowledged"
    msg["X-Outage-Incident"] = "inc-7"
    msg["X-Outage-Seq"] = "1"
    msg.set_content("We are investigating elevated error rates.\n")
    return msg


def _japanese() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "status@example.com"
    msg["To"] = "佐藤 <sato@example.jp>"
    msg["Subject"] = JA_SUBJECT  # encoded as RFC 2047 by as_bytes()
    msg["Message-ID"] = "<inc-7.2.progress.c-2.0@example.com>"
    msg["In-Reply-To"] = "<inc-7.1.acknowledged.c-2.0@example.com>"
    msg["X-Outage-Notice"] = "progress"
    msg["X-Outage-Incident"] = "inc-7"
    msg["X-Outage-Seq"] = "2"
    msg.set_content("エラー率の上昇を調査しています。\n")
    msg.add_alternative(
        "<html><body><p>エラー率の上昇を調査しています。</p>"
        "<script>alert('in html')</script></body></html>",
        subtype="html",
    )
    return msg


async def test_capture_end_to_end(tmp_path: Path) -> None:
    directory = tmp_path / "mail"
    capture = MailCapture(directory, smtp_port=0, web_port=0)
    await capture.start()
    try:
        assert capture.smtp_port not in (0, 1025)
        assert capture.web_url.startswith("http://127.0.0.1:") and not capture.web_url.endswith(":0")

        plain, ja = _plain(), _japanese()
        raw_ja = ja.as_bytes()
        assert b"=?utf-8?" in raw_ja.lower()  # the subject really travels RFC 2047-encoded
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=capture.smtp_port) as smtp:
            errors, _ = await smtp.send_message(plain)
            assert errors == {}
            errors, _ = await smtp.sendmail("status@example.com", ["sato@example.jp"], raw_ja)
            assert errors == {}
        found = await capture.wait_for(2, timeout=5)
        assert [e["n"] for e in found] == [1, 2]

        # files: one .eml each, byte for byte, named <timestamp>-<n>.eml
        emls = sorted(directory.glob("*.eml"))
        assert len(emls) == 2
        assert emls[0].name.endswith("-000001.eml") and emls[1].name.endswith("-000002.eml")
        assert emls[1].read_bytes().replace(b"\r\n", b"\n") == raw_ja.replace(b"\r\n", b"\n")

        # index: JSON lines with decoded subject and the outage headers
        lines = [json.loads(line) for line in (directory / INDEX_NAME).read_text("utf-8").splitlines()]
        assert len(lines) == 2
        first, second = lines
        assert first["file"] == emls[0].name
        assert first["recipients"] == ["ops@example.net"]
        assert first["kind"] == "acknowledged" and first["incident"] == "inc-7" and first["seq"] == 1
        assert first["message_id"] == "<inc-7.1.acknowledged.c-1.0@example.com>"
        assert second["subject"] == JA_SUBJECT
        assert second["recipients"] == ["sato@example.jp"]
        assert second["to"] == "佐藤 <sato@example.jp>"
        assert second["kind"] == "progress" and second["seq"] == 2
        assert second["in_reply_to"] == "<inc-7.1.acknowledged.c-2.0@example.com>"
        assert second["received_at"].endswith("+00:00")
        for entry in lines:
            assert {"file", "recipients", "subject", "kind", "incident", "message_id", "received_at"} <= entry.keys()

        parsed = capture.message(2)
        assert parsed["Subject"] == JA_SUBJECT and parsed.get_content_type() == "multipart/alternative"

        async with aiohttp.ClientSession() as http:
            # JSON API, oldest first, with filters
            async with http.get(f"{capture.web_url}/api/messages") as r:
                assert r.status == 200
                api = await r.json()
            assert [m["subject"] for m in api] == [first["subject"], JA_SUBJECT]
            async with http.get(f"{capture.web_url}/api/messages", params={"to": "SATO@example"}) as r:
                assert [m["n"] for m in await r.json()] == [2]
            async with http.get(f"{capture.web_url}/api/messages", params={"kind": "acknowledged"}) as r:
                assert [m["n"] for m in await r.json()] == [1]
            async with http.get(f"{capture.web_url}/api/messages/2") as r:
                detail = await r.json()
            assert detail["text"].strip() == "エラー率の上昇を調査しています。"
            assert "<p>エラー率の上昇を調査しています。</p>" in detail["html"]
            assert ["X-Outage-Notice", "progress"] in detail["headers"]

            # outbox page: decoded subject, newest first, everything escaped, refreshing itself
            async with http.get(f"{capture.web_url}/") as r:
                assert r.status == 200 and r.content_type == "text/html"
                page = await r.text()
            assert "APIのエラー" in page
            assert "<script>" not in page
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
            assert page.index("sato@example.jp") < page.index("ops@example.net")  # newest first
            assert 'http-equiv="refresh"' in page
            async with http.get(f"{capture.web_url}/", params={"incident": "inc-7", "to": "ops@"}) as r:
                filtered = await r.text()
            assert "ops@example.net" in filtered and "sato@example.jp" not in filtered
            async with http.get(f"{capture.web_url}/", params={"incident": "inc-nope"}) as r:
                assert "ops@example.net" not in await r.text()

            # message page: headers, text part, HTML part only inside a sandboxed srcdoc
            async with http.get(f"{capture.web_url}/message/2") as r:
                assert r.status == 200
                msg_page = await r.text()
            assert "<script>" not in msg_page
            assert "エラー率の上昇を調査しています。" in msg_page
            assert "sandbox=" in msg_page and "srcdoc=" in msg_page
            assert "&lt;script&gt;alert(&#39;in html&#39;)&lt;/script&gt;" in msg_page
            async with http.get(f"{capture.web_url}/message/2/html") as r:
                assert r.status == 200
                assert r.headers["Content-Security-Policy"].startswith("sandbox")
            async with http.get(f"{capture.web_url}/message/99") as r:
                assert r.status == 404
    finally:
        await capture.stop()

    # a restart on the same directory keeps the messages and goes on numbering
    again = MailCapture(directory, smtp_port=0, web_port=0)
    await again.start()
    try:
        assert [m["n"] for m in again.messages()] == [1, 2]
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=again.smtp_port) as smtp:
            await smtp.send_message(_plain())
        assert (await again.wait_for(3, timeout=5))[-1]["n"] == 3
    finally:
        await again.stop()


async def test_stop_closes_idle_connections(tmp_path: Path) -> None:
    capture = MailCapture(tmp_path / "mail", smtp_port=0, web_port=0)
    await capture.start()
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=capture.smtp_port, timeout=5)
    await smtp.connect()
    await smtp.noop()
    await capture.stop()  # must not hang on the open session
    with pytest.raises(aiosmtplib.SMTPException):
        await smtp.noop()
