"""The bytes of a notice: headers, parts, encodings, and no header injection."""

from __future__ import annotations

import email
from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.policy import default

import pytest

from domain.content import NoticeContent
from notifiers.message import build_message
from notifiers.render import RenderedNotice, render

NOW = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
UNSUB = "https://status.example.com/unsubscribe/" + "t0k3n" * 30  # long: must stay unfolded
X_HEADERS = {
    "X-Outage-Incident": "inc-7",
    "X-Outage-Notice": "progress",
    "X-Outage-Seq": "3",
    "X-Outage-ETA": "unknown",
    "X-Outage-Next-Update": "2026-11-25T01:30:00Z",
}


def rendered(locale: str = "en", **kw) -> RenderedNotice:
    base = dict(
        kind="progress", locale=locale, timezone="Asia/Tokyo", now=NOW, incident_id="inc-7", seq=3,
        severity="major", status="investigating",
        title="API errors" if locale == "en" else "請求APIでエラーが発生しています",
        message="We are investigating." if locale == "en" else "エラー率の上昇を調査しています。",
        services=(("api", "ap-northeast-1"),), started_at=NOW - timedelta(hours=1),
        next_update_at=NOW + timedelta(minutes=30), customer_name="Example KK", contact_name="Sato",
        status_url="https://status.example.com/status", unsubscribe_url=UNSUB,
    )
    base.update(kw)
    return render(NoticeContent(**base))


def build(**kw) -> bytes:
    args = dict(
        rendered=rendered(), mail_from="status@example.com", to_email="ops@example.jp", to_name="Sato",
        message_id="<inc-7.3.progress.c-42.0@example.com>",
        in_reply_to="<inc-7.1.acknowledged.c-42.0@example.com>", headers=X_HEADERS,
        list_unsubscribe_url=UNSUB, date=NOW,
    )
    args.update(kw)
    return build_message(**args)


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=default)


def test_headers():
    msg = parse(build())
    assert msg["From"] == "status@example.com"
    assert msg["To"] == "Sato <ops@example.jp>"
    assert msg["Subject"] == "[Investigating] API errors"
    assert msg["Date"].datetime == NOW
    assert msg["Message-ID"] == "<inc-7.3.progress.c-42.0@example.com>"
    assert msg["In-Reply-To"] == "<inc-7.1.acknowledged.c-42.0@example.com>"
    assert msg["References"] == "<inc-7.1.acknowledged.c-42.0@example.com>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["List-Unsubscribe"] == f"<{UNSUB}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["MIME-Version"] == "1.0"
    for name, value in X_HEADERS.items():
        assert msg[name] == value
    for name in ("From", "To", "Subject", "Message-ID", "List-Unsubscribe", "X-Outage-Seq"):
        assert len(msg.get_all(name)) == 1


@pytest.mark.parametrize("locale", ["en", "ja"])
def test_multipart_alternative_text_then_html_in_utf8(locale):
    r = rendered(locale)
    msg = parse(build(rendered=r))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    # Decoded, the parts are the rendered text with canonical CRLF line ends.
    assert parts[0].get_content() == r.text.replace("\n", "\r\n")
    assert parts[1].get_content() == r.html.replace("\n", "\r\n")
    assert msg.get_body(("html",)) is parts[1]


def test_crlf_line_endings_and_short_lines():
    data = build(rendered=rendered("ja"))
    assert data.count(b"\n") == data.count(b"\r\n")
    assert data.isascii()
    for line in data.split(b"\r\n"):
        assert len(line) <= 998


def test_no_reply_headers_without_in_reply_to():
    msg = parse(build(in_reply_to=None))
    assert msg["In-Reply-To"] is None and msg["References"] is None


def test_message_ids_without_brackets_get_them():
    msg = parse(build(message_id="inc-7.3.progress.c-42.0@example.com", in_reply_to="root.1@example.com"))
    assert msg["Message-ID"] == "<inc-7.3.progress.c-42.0@example.com>"
    assert msg["References"] == "<root.1@example.com>"


def test_long_ids_and_urls_are_not_folded_or_encoded():
    long_id = "<inc-" + "x" * 90 + ".12.ticket-ack.c-" + "y" * 40 + ".T-100@example.com>"
    data = build(message_id=long_id, in_reply_to=long_id, list_unsubscribe_mailto="unsubscribe@example.com")
    assert f"Message-ID: {long_id}\r\n".encode() in data
    assert f"References: {long_id}\r\n".encode() in data
    assert f"List-Unsubscribe: <{UNSUB}>, <mailto:unsubscribe@example.com>\r\n".encode() in data
    assert b"=?utf-8?q?=3Chttps" not in data
    msg = parse(data)
    assert msg["Message-ID"] == long_id
    assert msg["List-Unsubscribe"] == f"<{UNSUB}>, <mailto:unsubscribe@example.com>"


def test_japanese_subject_and_name_are_rfc2047_and_decode_back():
    r = rendered("ja")
    assert r.subject == "【調査中】請求APIでエラーが発生しています"
    data = build(rendered=r, to_name="佐藤 太郎")
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: =?utf-8?" in head and b"To: =?utf-8?" in head
    assert "請求".encode() not in head
    msg = parse(data)
    assert msg["Subject"] == "【調査中】請求APIでエラーが発生しています"
    assert msg["To"].addresses[0].display_name == "佐藤 太郎"
    assert msg["To"].addresses[0].addr_spec == "ops@example.jp"
    text = msg.get_body(("plain",)).get_content()
    assert "次回は 10:30（日本時間）までにご連絡いたします。" in text


@pytest.mark.parametrize("name", ["佐藤 太郎", "José Álvarez", "長い名前の人です長い名前の人で", "長い名前の人です長い名前の人ですね"])
@pytest.mark.parametrize("addr", ["taro@example.jp", "a.very.long.address.of.someone@subdomain.example.co.jp"])
def test_a_non_ascii_name_in_to_is_written_as_the_email_package_folds_it(name, addr):
    # short names take a quicker path than email.header.Header: the same line, byte for byte
    from email.header import Header

    from notifiers.message import _UTF8_B64

    header = Header(name, _UTF8_B64, header_name="To")
    header.append(f"<{addr}>", "us-ascii")
    expected = "To: " + header.encode(splitchars=";, \t", maxlinelen=76, linesep="\r\n")
    head = build(to_name=name, to_email=addr).split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert expected in head.split("\r\nSubject:")[0]
    assert all(len(line) <= 76 for line in expected.split("\r\n"))
    raw = email.message_from_bytes(build(to_name=name, to_email=addr))["To"]  # as written, unparsed
    assert str(make_header(decode_header(raw))) == f"{name} <{addr}>"  # RFC 2047 decoding


def test_long_japanese_subject_folds_into_valid_encoded_words():
    r = rendered("ja", title="請求APIおよび管理画面で断続的にエラーが発生し、一部のお客様でログインできない状態が続いています")
    data = build(rendered=r)
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    for word in head.split():
        if word.startswith("=?"):
            assert len(word) <= 75
    assert parse(data)["Subject"] == r.subject


def test_ascii_names_with_specials_are_quoted():
    msg = parse(build(to_name='Sato, Taro "ops"'))
    assert msg["To"].addresses[0].display_name == 'Sato, Taro "ops"'
    assert msg["To"].addresses[0].addr_spec == "ops@example.jp"


def test_no_name():
    assert parse(build(to_name=None))["To"] == "ops@example.jp"
    assert parse(build(to_name=""))["To"] == "ops@example.jp"


def test_from_with_a_display_name():
    msg = parse(build(mail_from="Example Status <status@example.com>"))
    assert msg["From"].addresses[0].display_name == "Example Status"


@pytest.mark.parametrize("field,value", [
    ("to_name", "Sato\r\nBcc: victim@example.net"),
    ("to_name", "Sato\nBcc: victim@example.net"),
    ("to_name", "佐藤\r\nBcc: victim@example.net"),
    ("to_email", "ops@example.jp\r\nBcc: victim@example.net"),
    ("message_id", "<a@b>\r\nBcc: victim@example.net"),
    ("in_reply_to", "<a@b>\nBcc: victim@example.net"),
    ("list_unsubscribe_url", "https://x/\r\nBcc: victim@example.net"),
    ("list_unsubscribe_mailto", "u@x\r\nBcc: victim@example.net"),
    ("mail_from", "status@example.com\r\nBcc: victim@example.net"),
])
def test_cr_or_lf_in_any_header_value_is_refused(field, value):
    with pytest.raises(ValueError):
        build(**{field: value})


@pytest.mark.parametrize("subject", [
    "[Update] API errors\r\nBcc: victim@example.net",
    "[Update] API errors\nBcc: victim@example.net",
    "【続報】APIのエラー\rBcc: victim@example.net",
])
def test_cr_or_lf_in_the_subject_is_refused(subject):
    r = rendered()
    with pytest.raises(ValueError):
        build(rendered=RenderedNotice(subject=subject, text=r.text, html=r.html))


def test_cr_or_lf_in_extra_headers_is_refused():
    with pytest.raises(ValueError):
        build(headers={**X_HEADERS, "X-Outage-Incident": "inc-7\r\nBcc: victim@example.net"})
    with pytest.raises(ValueError):
        build(headers={"X-Outage\r\nBcc": "x"})
    with pytest.raises(ValueError):
        build(headers={"Subject": "a second subject"})


def test_a_title_with_line_breaks_never_adds_a_header():
    # render() makes the subject one line; the bytes then carry exactly one Subject and no Bcc.
    r = rendered(title="API errors\r\nBcc: victim@example.net")
    msg = parse(build(rendered=r, to_name="Sato"))
    assert msg["Bcc"] is None
    assert len(msg.get_all("Subject")) == 1


def test_naive_date_is_refused():
    with pytest.raises(ValueError):
        build(date=datetime(2026, 11, 25, 10, 0))


def test_date_keeps_its_offset():
    jst = timezone(timedelta(hours=9))
    assert b"Date: Wed, 25 Nov 2026 10:00:00 +0900\r\n" in build(date=NOW.astimezone(jst))


def test_bad_addresses_are_refused():
    for bad in ("not-an-address", "a b@example.com", "<ops@example.jp>", "ops@例え.jp"):
        with pytest.raises(ValueError):
            build(to_email=bad)


# --- long values: every line at most 998 octets, every value read back as it was ------------

LONG_TITLE_EN = " ".join(["Elevated error rates on the billing API and dashboard in Tokyo"] * 40)  # ~2,500
LONG_TITLE_JA = "請求APIと管理画面で断続的にエラーが発生しています。" * 80  # 2,080 characters, no space


def with_subject(subject: str) -> RenderedNotice:
    r = rendered()
    return RenderedNotice(subject=subject, text=r.text, html=r.html)


def head_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def assert_valid(data: bytes) -> email.message.EmailMessage:
    """Lines of at most 998 octets (RFC 5322 §2.1.1), 7-bit headers, one header per field."""
    assert data.isascii()
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    msg = parse(data)
    assert not msg.defects
    for name in ("From", "To", "Subject", "Message-ID", "X-Outage-Incident"):
        assert len(msg.get_all(name)) == 1, name
    return msg


def rfc2047(data: bytes, name: str) -> str:
    """A header unfolded and decoded with the email package's RFC 2047 decoder (which ignores
    the whitespace between adjacent encoded words, as RFC 2047 §6.2 says)."""
    return str(make_header(decode_header(email.message_from_bytes(data)[name])))


@pytest.mark.parametrize("subject", [
    "[Investigating] " + LONG_TITLE_EN,
    "[Investigating] " + "x" * 2_000,                      # one word longer than a line may be
    "[Investigating] " + "y" * 900 + " and " + "z" * 990,  # long words, each within a line
    "【調査中】" + LONG_TITLE_JA,
    "【調査中】" + "障" * 200,                               # a Japanese title at its limit
    "[Investigating] " + "a" * 200,                         # an ASCII title at its limit, no space
    "Ünïcödé — " + "naïve café " * 180,
    "[Investigating] Mixed 障害 " * 120,
])
def test_a_subject_of_any_length_is_folded_and_reads_back_the_same(subject):
    msg = assert_valid(build(rendered=with_subject(subject)))
    assert msg["Subject"] == subject
    assert rfc2047(build(rendered=with_subject(subject)), "Subject").replace("\r\n", "") == subject


def test_a_long_ascii_subject_is_folded_at_its_spaces_as_the_email_package_folds_it():
    from email.message import EmailMessage
    from email.policy import SMTP

    subject = "[Investigating] " + LONG_TITLE_EN
    expected = EmailMessage(policy=SMTP)
    expected["Subject"] = subject
    theirs = expected.as_bytes().split(b"\r\n\r\n", 1)[0]
    data = build(rendered=with_subject(subject))
    ours = data.split(b"\r\nSubject: ", 1)[1].split(b"\r\nDate: ", 1)[0]
    assert b"Subject: " + ours == theirs
    assert ours.count(b"\r\n ") > 25 and b"=?" not in ours     # readable: folded, not encoded
    assert all(len(line) <= 78 for line in (b"Subject: " + ours).split(b"\r\n"))


def test_a_word_too_long_for_any_line_goes_into_encoded_words():
    data = build(rendered=with_subject("[Investigating] " + "x" * 2_000))
    subject_lines = [line for line in head_lines(data) if line.startswith((b"Subject:", b" =?"))]
    assert len(subject_lines) > 20 and all(len(line) <= 76 for line in subject_lines)


def test_a_long_japanese_subject_is_encoded_words_of_at_most_75_characters():
    data = build(rendered=with_subject("【調査中】" + LONG_TITLE_JA))
    words = [w for line in head_lines(data) for w in line.split() if w.startswith(b"=?")]
    assert len(words) > 50 and all(len(w) <= 75 for w in words)
    assert "請求".encode() not in data


@pytest.mark.parametrize("name", [
    "Alex " * 40,                          # 200 characters with spaces: folded at them
    "A" * 200,                             # at the limit, one word: a long line, within 998
    "Sato, Taro \"ops\" (NOC) <x@y> ; " * 32,   # specials: quoted, and the quotes folded over
    'back\\slash "quote" ' * 60,
    "Alex " * 400,                         # beyond the limit: still a valid message
])
def test_a_long_ascii_name_in_to_is_folded_and_reads_back_the_same(name):
    data = build(to_name=name)
    msg = assert_valid(data)
    assert msg["To"].addresses[0].display_name == name.strip()
    assert msg["To"].addresses[0].addr_spec == "ops@example.jp"
    assert not msg["To"].defects


@pytest.mark.parametrize("name", [
    "佐藤" * 100,                           # a Japanese name at the limit
    "佐藤 太郎（株式会社テスト 情報システム部）" * 25,
    "José Müller-Łukasiewicz, «ops» " * 40,
    "N" * 1_000,                            # an ASCII word too long for any line: encoded words
    '"' * 1_000,
])
def test_a_name_that_needs_encoded_words_is_rfc2047_and_decodes_back(name):
    data = build(to_name=name, to_email="a.very.long.address.of.someone@subdomain.example.co.jp")
    msg = assert_valid(data)
    to_lines = [line for line in head_lines(data) if not line[:1].isalpha() or line.startswith(b"To:")]
    assert all(len(line) <= 76 for line in to_lines[:-1] if b"=?" in line)
    decoded = rfc2047(data, "To").replace("\r\n", "")
    assert decoded == f"{name.strip()} <a.very.long.address.of.someone@subdomain.example.co.jp>"
    # The modern parser finds the address; it reads a space between adjacent encoded words of a
    # display name (CPython gh-128110, fixed after 3.11), so the name is compared without spaces.
    assert msg["To"].addresses[0].addr_spec == "a.very.long.address.of.someone@subdomain.example.co.jp"
    assert msg["To"].addresses[0].display_name.replace(" ", "") == name.strip().replace(" ", "")


def test_a_long_from_display_name_is_folded():
    name = " ".join(["Example Status Page of the Operations Team"] * 10)
    msg = assert_valid(build(mail_from=f"{name} <status@example.com>"))
    assert msg["From"].addresses[0].display_name == name
    assert msg["From"].addresses[0].addr_spec == "status@example.com"
    name = "株式会社テストのステータス" * 10
    data = build(mail_from=f"{name} <status@example.com>")
    assert_valid(data)
    assert rfc2047(data, "From").replace("\r\n", "") == f"{name} <status@example.com>"


@pytest.mark.parametrize("incident", ["inc-" + "x" * 2_000, "inc-" + "障" * 700, " ".join(["inc"] * 500)])
def test_an_x_outage_value_of_any_length_is_folded(incident):
    data = build(headers={**X_HEADERS, "X-Outage-Incident": incident})
    msg = assert_valid(data)
    assert msg["X-Outage-Incident"] == incident
    assert msg["X-Outage-Seq"] == "3"


def test_an_id_at_its_limit_stays_unfolded_in_x_outage_headers():
    incident = "inc-" + "x" * 252   # 256 bytes
    data = build(headers={**X_HEADERS, "X-Outage-Incident": incident})
    assert f"\r\nX-Outage-Incident: {incident}\r\n".encode() in data


def test_a_reply_to_the_longest_message_id_stays_on_one_line():
    long_id = "<" + "i" * 64 + ".12.ticket-ack." + "c" * 64 + "." + "t" * 64 + "@" + "d" * 200 + ".example.com>"
    data = build(message_id=long_id, in_reply_to=long_id)
    msg = assert_valid(data)
    assert msg["In-Reply-To"] == long_id and msg["References"] == long_id
    assert f"\r\nReferences: {long_id}\r\n".encode() in data


def test_short_values_skip_the_folder(monkeypatch):
    """Short ASCII values are written as given: neither the folder nor the email package's
    Header (the slow parts) is reached. (No time is asserted: a timed unit test failed on a busy
    CI machine.)"""
    import notifiers.message as message

    def refuse(*args, **kwargs):
        raise AssertionError("a short value went through the folder")

    monkeypatch.setattr(message, "_fold", refuse)
    monkeypatch.setattr(message.Header, "__init__", refuse)
    data = build(rendered=rendered(), to_name="Sato")
    assert b"\r\nSubject: " in data and b"\r\nTo: Sato <" in data


# --- Reply-To: where a reply reaches a person --------------------------------------------------


def test_reply_to_is_written_when_given():
    msg = parse(build(reply_to="Support <support@example.com>"))
    assert msg["Reply-To"] == "Support <support@example.com>"
    assert len(msg.get_all("Reply-To")) == 1
    assert parse(build(reply_to="support@example.com"))["Reply-To"] == "support@example.com"
    japanese = parse(build(reply_to="サポート <support@example.jp>"))["Reply-To"]
    assert japanese.addresses[0].display_name == "サポート" and japanese.addresses[0].addr_spec == "support@example.jp"


@pytest.mark.parametrize("reply_to", [None, "", "  "])
def test_no_reply_to_without_one(reply_to):
    assert "Reply-To" not in parse(build(reply_to=reply_to))
    assert b"\r\nReply-To:" not in build(reply_to=reply_to)   # (In-Reply-To is there)


@pytest.mark.parametrize("value", ["support@example.com\r\nBcc: victim@example.net", "s@x\nBcc: v@example.net"])
def test_cr_or_lf_in_reply_to_is_refused(value):
    with pytest.raises(ValueError):
        build(reply_to=value)


def test_reply_to_cannot_come_in_through_the_extra_headers():
    with pytest.raises(ValueError, match="Reply-To"):
        build(headers={**X_HEADERS, "Reply-To": "x@example.com"})


def composed(kind: str, locale: str, reply_to: str | None) -> email.message.EmailMessage:
    """A notice of ``kind`` composed as a worker composes it (``NoticeComposer``), parsed."""
    from domain.audience import NoticeJob
    from domain.incident import decide
    from notifiers.notice import NoticeComposer
    from schemas import Customer, IncidentEvent

    declared = IncidentEvent.model_validate({
        "event_id": "e-1", "incident_id": "inc-7", "type": "declared", "at": NOW.isoformat(), "severity": "major",
        "title": {"en": "API errors", "ja": "APIのエラー"}, "components": ["api"]})
    d = decide(None, declared, NOW)
    if kind == "resolved":
        d = decide(d.state, IncidentEvent.model_validate({"event_id": "e-2", "incident_id": "inc-7", "type": "resolved",
                                                          "at": NOW.isoformat(), "message": "Fixed."}), NOW)
    customer = Customer.model_validate({"customer_id": "c-42", "name": "Example KK", "locale": locale,
                                        "timezone": "Asia/Tokyo", "contacts": [{"email": "ops@example.jp"}],
                                        "services": [{"component": "api", "region": "ap-northeast-1"}]})
    job = NoticeJob(kind=kind, round=d.round, customer=customer, recipient="k", email="ops@example.jp",
                    contact_name="Sato", message_id=f"<inc-7.{d.round.seq}.{kind}.c-42.k@example.com>",
                    in_reply_to=None if kind == "acknowledged" else "<inc-7.1.acknowledged.c-42.k@example.com>",
                    services=(("api", "ap-northeast-1"),))
    composer = NoticeComposer(public_url="https://status.example.com", mail_from="status@example.com",
                              signing_key=b"k", reply_to=reply_to)
    return parse(composer(job, NOW))


INVITATION = {"en": "reply to this email to reach our support team", "ja": "このメールにご返信ください。サポート担当者に届"}


@pytest.mark.parametrize("locale", ["en", "ja"])
@pytest.mark.parametrize("kind", ["acknowledged", "progress", "scheduled", "resolved"])
def test_a_notice_with_reply_to_has_the_header_and_invites_a_reply_in_both_parts(kind, locale):
    msg = composed(kind, locale, "Support <support@example.com>")
    assert msg["Reply-To"] == "Support <support@example.com>"
    for part in ("plain", "html"):
        assert INVITATION[locale] in msg.get_body((part,)).get_content().lower(), (kind, locale, part)


@pytest.mark.parametrize("locale", ["en", "ja"])
@pytest.mark.parametrize("kind", ["acknowledged", "progress", "scheduled", "resolved"])
def test_a_notice_without_reply_to_has_no_header_and_invites_no_reply(kind, locale):
    msg = composed(kind, locale, None)
    assert "Reply-To" not in msg
    for part in ("plain", "html"):
        body = msg.get_body((part,)).get_content()
        assert "reply" not in body.lower() and "返信" not in body, (kind, locale, part)
