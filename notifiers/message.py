"""The bytes of one notice email, built once and handed to SMTP as they are.

``multipart/alternative`` (text, then HTML), UTF-8, CRLF line endings. The header values
are checked and encoded with the email package's helpers; the message itself is assembled
directly, with the C encoders of ``binascii`` for the bodies: the email package's generator
and its pure-Python quoted-printable were 55 % of the worker's time per notice (profiled in
the benchmark's fan-out). Non-ASCII Subject and display names are RFC 2047 encoded. Header values are checked
first: any CR, LF or NUL is refused with ``ValueError``, so no caller-provided string (a
title, a contact's name) can ever add a header.

The email package's own folder is kept away from identifiers and URLs: under the modern
policies it would fold a long ``List-Unsubscribe`` URL into RFC 2047 encoded words, which mail
clients do not decode there, and it would put a long Message-ID on a continuation line. These
headers are written unfolded (RFC 5322 allows up to 998 characters on a line).

No text value can make a notice impossible to write: a Subject, a display name or an
``X-Outage-*`` value of any length is folded. ASCII text is folded at its spaces into lines of
at most 78 characters (RFC 5322 §2.1.1) where its words allow; a word too long for a line of
998, and any non-ASCII text, goes into RFC 2047 encoded words of at most 75 characters. Either
way every line is at most 998 octets and the value reads back the same once unfolded.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from functools import lru_cache
from datetime import datetime, timezone
from email.charset import BASE64, Charset
from email.header import Header
from email.policy import compat32
from email.utils import format_datetime, formataddr, parseaddr

from notifiers.render import RenderedNotice

__all__ = ["build_message", "MAX_LINE"]

# RFC 5322 §2.1.1: a line is at most 998 characters, CRLF excluded; it should be at most 78.
MAX_LINE = 998
FOLD_AT = 78

# The policy of every part: the classic (compat32) header handling, which leaves ASCII
# values alone, with CRLF line endings as SMTP DATA wants them. Folding at 76 keeps every
# RFC 2047 encoded word within its 75 characters (a continuation line is one space + word).
_POLICY = compat32.clone(linesep="\r\n", max_line_length=76)
_FORBIDDEN = re.compile(r"[\r\n\x00]")
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII except ':'
_WORD = re.compile(r"[ \t]*[^ \t]+")  # a word with the whitespace before it: folding goes before that
# Headers build_message sets itself; the caller's ``headers`` may not repeat them.
_OWN = frozenset(
    h.lower()
    for h in (
        "From", "To", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
        "Auto-Submitted", "List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version",
        "Content-Type", "Content-Transfer-Encoding",
    )
)

_UTF8_B64 = Charset("utf-8")
_UTF8_B64.body_encoding = BASE64


class _Raw:
    """A header value written exactly as given (no folding, no encoding): ids and URLs."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def encode(self, splitchars: str = ";, ", maxlinelen: int | None = None, linesep: str = "\n") -> str:
        return self.value

    def __str__(self) -> str:
        return self.value


def _check(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"header {name}: expected str, got {type(value).__name__}")
    if _FORBIDDEN.search(value):
        raise ValueError(f"header {name} may not contain CR, LF or NUL: {value!r}")
    return value


def _raw(name: str, value: str) -> _Raw:
    _check(name, value)
    if not value.isascii():
        raise ValueError(f"header {name} must be ASCII: {value!r}")
    if len(name) + 2 + len(value) > MAX_LINE:
        raise ValueError(f"header {name} is longer than a mail line may be ({len(value)} characters)")
    return _Raw(value)


def _fits(name: str, value: str) -> bool:
    return value.isascii() and len(name) + 2 + len(value) <= _POLICY.max_line_length


def _fold(name: str, value: str) -> _Raw | None:
    """ASCII text folded before the whitespace between its words (CRLF + the same whitespace,
    so that unfolding gives the value back): lines of at most ``FOLD_AT`` characters where the
    words allow. None when a word is too long for a line of ``MAX_LINE``."""
    words = _WORD.findall(value)
    if not words:
        return None
    words[-1] += value[sum(map(len, words)):]  # trailing whitespace stays on the last line
    lines, current = [], f"{name}: {words[0]}"
    for word in words[1:]:
        if len(current) + len(word) <= FOLD_AT:
            current += word
        else:
            lines.append(current)
            current = word
    lines.append(current)
    if any(len(line) > MAX_LINE for line in lines):
        return None
    return _Raw("\r\n".join(lines)[len(name) + 2:])


@lru_cache(maxsize=256)
def _subject(value: str) -> str:
    """The Subject line (the notices of one round share a few: encoded once)."""
    return _line("Subject", _text("Subject", value))


@lru_cache(maxsize=4)
def _date(seconds: int) -> str:
    """The Date line of a second (many notices share one: formatted once)."""
    return _line("Date", format_datetime(datetime.fromtimestamp(seconds, timezone.utc)))


def _text(name: str, value: str) -> Header | _Raw:
    """Unstructured text: as is when ASCII (folded at its spaces when long), else, or when a
    word is too long for a line, RFC 2047 (UTF-8, folded into short words)."""
    _check(name, value)
    if _fits(name, value):
        return _Raw(value)  # nothing to fold or encode: skip the folder (it is the slow part)
    if value.isascii():
        folded = _fold(name, value)
        if folded is not None:
            return folded
    return Header(value, _UTF8_B64, header_name=name)


def _address(name: str, display: str | None, addr: str) -> Header | _Raw:
    _check(name, addr)
    display = _check(name, display or "").strip()
    addr = addr.strip()
    if not addr or "@" not in addr or not addr.isascii() or any(c in addr for c in " <>,;\"()"):
        raise ValueError(f"header {name}: not a plain ASCII address: {addr!r}")
    if not display:
        return _raw(name, addr)
    if display.isascii():
        value = formataddr((display, addr))  # quotes the name when it needs it
        if _fits(name, value):
            return _Raw(value)
        folded = _fold(name, value)  # folding whitespace may stand inside a quoted name too
        if folded is not None:
            return folded
        # a word of the name too long for a line: the name in encoded words, below
    word = _UTF8_B64.header_encode(display)  # one encoded word, as Header would write it when it fits
    if len(name) + 2 + len(word) <= _POLICY.max_line_length:
        fold = " " if len(name) + 2 + len(word) + 1 + len(addr) + 2 <= _POLICY.max_line_length else "\r\n "
        return _Raw(f"{word}{fold}<{addr}>")
    header = Header(display, _UTF8_B64, header_name=name)  # a long name: folded into several words
    header.append(f"<{addr}>", "us-ascii")
    return header


@lru_cache(maxsize=16)
def _mailbox(name: str, value: str) -> Header | _Raw:
    """A caller's From value, ``addr`` or ``Name <addr>`` (the same for every notice: parsed once)."""
    _check(name, value)
    display, addr = parseaddr(value)
    if not addr:
        raise ValueError(f"header {name}: not an address: {value!r}")
    return _address(name, display, addr)


def _msg_id(name: str, value: str) -> _Raw:
    _check(name, value)
    value = value.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    if " " in value or value.count("<") != 1 or not value.endswith(">") or "@" not in value:
        raise ValueError(f"header {name}: not a message id: {value!r}")
    return _raw(name, value)


def _part(body: str, subtype: str) -> str:
    """One text part with its headers. Mostly-ASCII text reads better and is smaller as
    quoted-printable; Japanese as base64. Either way the lines end in CRLF once decoded
    (canonical text, RFC 2046 §4.1.1)."""
    data = body.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    extra_bytes = len(data) - len(body)  # about 0 for ASCII; 2 per kana/kanji
    if extra_bytes <= len(body) // 10:
        encoding = "quoted-printable"
        payload = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).decode("ascii")
        if not payload.endswith("\r\n"):
            payload += "\r\n"
    else:
        encoding = "base64"
        # base64.encodebytes' output, 76-character lines, from one C call instead of one a line
        flat = base64.b64encode(data).decode("ascii")
        payload = "".join(f"{flat[i:i + 76]}\r\n" for i in range(0, len(flat), 76))
    # the CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1), not to the part
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n{payload}\r\n")


def _line(name: str, value: Header | _Raw) -> str:
    """``Name: value`` as it goes on the wire (encoded words folded at 76 characters); every
    line of it at most ``MAX_LINE`` characters, or ``ValueError``."""
    if isinstance(value, Header):
        text = value.encode(splitchars=";, \t", maxlinelen=_POLICY.max_line_length, linesep="\r\n")
    else:
        text = str(value)
    line = f"{name}: {text}"
    if len(line) > MAX_LINE and any(len(part) > MAX_LINE for part in line.split("\r\n")):
        raise ValueError(f"header {name} is longer than a mail line may be ({len(text)} characters)")
    return line


def build_message(
    *,
    rendered: RenderedNotice,
    mail_from: str,
    to_email: str,
    to_name: str | None,
    message_id: str,
    in_reply_to: str | None,
    headers: Mapping[str, str],
    list_unsubscribe_url: str,
    list_unsubscribe_mailto: str | None = None,
    reply_to: str | None = None,
    date: datetime,
) -> bytes:
    """One notice as the bytes of an RFC 5322 message (CRLF line endings).

    ``message_id`` / ``in_reply_to`` are taken with or without angle brackets. ``headers`` are
    extra fields (the ``X-Outage-*`` ones), added in the order given; they may not repeat a
    field set here. ``list_unsubscribe_mailto`` may be given with or without ``mailto:``.
    ``reply_to`` (``addr`` or ``Name <addr>``, like ``mail_from``): the ``Reply-To`` field, where a
    reply reaches a person; None or blank: no such field.
    Raises ``ValueError`` on any header value with CR/LF/NUL, a naive ``date``, or a malformed
    address or id.
    """
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError(f"date must be timezone-aware, got {date!r}")

    # A boundary that cannot occur in the parts: "=_" is never in base64 nor quoted-printable
    # output (a literal "=" is written "=3D").
    boundary = f"=_notice_{secrets.token_hex(12)}"
    lines = [
        _line("From", _mailbox("From", mail_from)),
        _line("To", _address("To", to_name, to_email)),
    ]
    if reply_to and reply_to.strip():
        lines.append(_line("Reply-To", _mailbox("Reply-To", reply_to.strip())))
    lines += [
        _subject(rendered.subject),
        _line("Date", format_datetime(date)) if date.utcoffset() else _date(int(date.timestamp())),
        _line("Message-ID", _msg_id("Message-ID", message_id)),
    ]
    if in_reply_to:
        root = _msg_id("In-Reply-To", in_reply_to)
        lines += [_line("In-Reply-To", root), _line("References", root)]
    lines.append("Auto-Submitted: auto-generated")

    targets = [f"<{_check('List-Unsubscribe', list_unsubscribe_url).strip()}>"]
    if list_unsubscribe_mailto:
        mailto = _check("List-Unsubscribe", list_unsubscribe_mailto).strip()
        if not mailto.lower().startswith("mailto:"):
            mailto = f"mailto:{mailto}"
        targets.append(f"<{mailto}>")
    if any(" " in t or t.count("<") != 1 or t.count(">") != 1 for t in targets) or targets[0] == "<>":
        raise ValueError(f"List-Unsubscribe: not a URL: {targets!r}")
    lines.append(_line("List-Unsubscribe", _raw("List-Unsubscribe", ", ".join(targets))))
    lines.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")

    for name, value in headers.items():
        if not _FIELD_NAME.match(name or ""):
            raise ValueError(f"not a header field name: {name!r}")
        if name.lower() in _OWN:
            raise ValueError(f"header {name} is set by build_message; do not pass it in headers")
        value = _check(name, str(value))
        # ids and times, as they are when they fit on a line; anything else folded as text
        fits = value.isascii() and len(name) + 2 + len(value) <= MAX_LINE
        lines.append(_line(name, _Raw(value) if fits else _text(name, value)))

    lines += ["MIME-Version: 1.0", f'Content-Type: multipart/alternative; boundary="{boundary}"']
    head = "\r\n".join(lines)
    text, html = _part(rendered.text, "plain"), _part(rendered.html, "html")
    return (f"{head}\r\n\r\n--{boundary}\r\n{text}--{boundary}\r\n{html}--{boundary}--\r\n").encode("ascii")
