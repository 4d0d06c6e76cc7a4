"""HTTP input bounds on a real worker: every path answers 4xx, never 500, to any header, token or
body. A body over 1 MiB gets 413, a malformed one 400, a non-UTF-8 Authorization header 401, a
crafted unsubscribe token 404, a crafted feedback token 403."""

from __future__ import annotations

import json
import socket
import time
from http.client import HTTPConnection

import pytest

from tests.conftest import API_TOKEN, http

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
DECLARE = {"severity": "minor", "title": "Bounds", "message": "Testing the bounds.", "components": ["api"],
           "update_interval_seconds": 3600}
CUSTOMER = {"customer_id": "c-bounds", "name": "Bounds KK", "locale": "en", "timezone": "UTC",
            "contacts": [{"email": "ops@bounds.example.com"}], "services": [{"component": "api", "region": "eu-west-1"}]}
AUTH = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}


def send(worker, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, bytes]:
    """One request through http.client (``body`` bytes, or an iterable of chunks sent chunked)."""
    conn = HTTPConnection("127.0.0.1", worker.port, timeout=30)
    try:
        chunked = body is not None and not isinstance(body, (bytes, bytearray))
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def raw(worker, request: bytes) -> tuple[int, bytes]:
    """One request written byte for byte (for what http.client will not send)."""
    with socket.create_connection(("127.0.0.1", worker.port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def with_header(method: str, path: str, name: bytes, value: bytes, body: bytes = b"{}") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".encode()
            + name + b": " + value + b"\r\n"
            + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)


@pytest.fixture
def worker(workers):
    return workers()


@pytest.fixture
def incident_id(worker):
    status, body = http("POST", worker.url + "/api/incidents", DECLARE, token=API_TOKEN)
    assert status == 201, body
    found = body["incident_id"]
    deadline = time.monotonic() + 15
    while worker.get(f"/api/incidents/{found}")[0] != 200:   # then the change routes reach the body check
        assert time.monotonic() < deadline, "the declared incident never showed"
        time.sleep(0.1)
    return found


def test_bodies_over_one_mib_get_413(worker, incident_id):
    paths = ["/api/incidents", f"/api/incidents/{incident_id}/updates", f"/api/incidents/{incident_id}/resolve"]
    for path in paths:
        for size in (MIB + 1, 10 * MIB):
            status, body = send(worker, "POST", path, b"{" + b" " * (size - 2) + b"}", AUTH)
            assert status == 413, (path, size, status, body[:200])
            assert b"larger than" in body
        # no Content-Length: chunked, counted as it arrives
        status, body = send(worker, "POST", path, (b" " * 65536 for _ in range(20)), AUTH)
        assert status == 413, (path, "chunked", status, body[:200])
    # exactly 1 MiB is within the bound
    document = json.dumps(DECLARE).encode()
    status, body = send(worker, "POST", "/api/incidents", document + b" " * (MIB - len(document)), AUTH)
    assert status == 201, body[:300]
    # the token is checked before the body is read
    assert send(worker, "POST", "/api/incidents", b" " * (2 * MIB), {"Content-Type": "application/json"})[0] == 401


MALFORMED = {
    "empty": b"", "not-json": b"{not json", "array": b"[]", "string": b'"a string"', "number": b"42",
    "null": b"null", "utf16ish": b"\xff\xfe\x00{", "bad-utf8-value": b'{"title": "\xff"}',
    "deep-array": b"[" * 200_000, "deep-in-object": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "huge-int": b'{"update_interval_seconds": ' + b"9" * 5000 + b"}", "nan": b'{"severity": NaN}',
    "two-objects": b"{}" * 1000, "truncated": b'{"message": "cut',
}
FOREIGN_AUTHORIZATION = {
    "ff-fe": b"Bearer \xff\xfe", "token-then-ff": b"Bearer " + API_TOKEN.encode() + b"\xff",
    "scheme-ff": b"\xff\xfe " + API_TOKEN.encode(), "utf8-accents": b"Bearer \xc3\xa9t\xc3\xa9",
    "zero-width": b"Bearer \xe2\x80\x8b" + API_TOKEN.encode(), "lone-80": b"\x80", "long-ff": b"Bearer " + b"\xff" * 4000,
}


def test_malformed_bodies_get_400(worker, incident_id):
    for name, body in MALFORMED.items():
        for path in ("/api/incidents", f"/api/incidents/{incident_id}/updates",
                     f"/api/incidents/{incident_id}/resolve"):
            status, answer = send(worker, "POST", path, body, AUTH)
            assert status == 400, (name, path, status, answer[:300])
            assert json.loads(answer)["error"]


def test_a_non_utf8_or_foreign_authorization_header_gets_401(worker, incident_id):
    document = json.dumps(DECLARE).encode()
    for name, value in FOREIGN_AUTHORIZATION.items():
        for path in ("/api/incidents", f"/api/incidents/{incident_id}/updates",
                     f"/api/incidents/{incident_id}/resolve"):
            status, answer = raw(worker, with_header("POST", path, b"Authorization", value, document))
            assert status == 401, (name, path, status, answer[:300])
    # the right token in the same raw form is accepted: the 401s are about the header, not the form
    status, answer = raw(worker, with_header("POST", "/api/incidents", b"Authorization",
                                             b"Bearer " + API_TOKEN.encode(), document))
    assert status == 201, answer[:300]


def test_header_abuse_is_refused_not_crashed(worker):
    # an oversized header, a bad Content-Length, a header name that is not a token: 4xx from the server
    cases = [with_header("POST", "/api/incidents", b"Authorization", b"Bearer " + b"a" * 20000),
             b"POST /api/incidents HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: -5\r\n\r\n",
             b"POST /api/incidents HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: abc\r\n\r\n",
             with_header("POST", "/api/incidents", b"Auth\xffrization", b"Bearer x")]
    for request in cases:
        status, answer = raw(worker, request)
        assert 400 <= status < 500, (request[:60], status, answer[:200])
    assert worker.get("/healthz")[0] == 200


CRAFTED_TOKENS = [
    "%C3%A9.%C3%A9.%C3%A9", "YWJj.3f9a1c2b04de.%C3%84%C3%84%C3%84%C3%84", "%FF%FE.%FF.%FF", "A" * 4000,
    "%00.%00.%00", "YWJj.3f9a1c2b04de.AAAAAAAAAAAAAAAAAAAAAA%E2%80%8B",
]


def test_crafted_unsubscribe_tokens_get_404(worker):
    for token in CRAFTED_TOKENS:
        for method in ("GET", "POST"):
            status, answer = send(worker, method, "/unsubscribe/" + token)
            assert status in (400, 404), (method, token[:60], status, answer[:200])
    for token in (b"\xc3\xa9.\xc3\xa9.\xc3\xa9", b"YWJj.3f9a1c2b04de.\xc3\x84\xc3\x84", b"\xff\xfe.\xff.\xff"):
        for method in (b"GET", b"POST"):   # raw bytes in the path, as no client would send them
            request = method + b" /unsubscribe/" + token + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" \
                b"Content-Length: 0\r\n\r\n"
            status, answer = raw(worker, request)
            assert status in (400, 404), (method, token, status, answer[:200])


def test_crafted_feedback_tokens_get_403(worker):
    for token in CRAFTED_TOKENS + ["YWJj.YWJj.3f9a1c2b04de.en.major.AAAAAAAAAAAAAAAAAAAAAA", "a.b.c.d.e.f"]:
        for method in ("GET", "POST"):
            status, answer = send(worker, method, "/feedback/" + token + "?score=5")
            assert status in (400, 403), (method, token[:60], status, answer[:200])
    for token in (b"\xc3\xa9.\xc3\xa9.\xc3\xa9", b"\xff\xfe.\xff.\xff.en.major.\xff"):
        for method in (b"GET", b"POST"):   # raw bytes in the path, as no client would send them
            request = method + b" /feedback/" + token + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" \
                b"Content-Length: 0\r\n\r\n"
            status, answer = raw(worker, request)
            assert status in (400, 403), (method, token, status, answer[:200])


async def test_an_unsubscribe_token_with_altered_padding_does_not_verify(workers, produce, smtp):
    produce("customers", CUSTOMER["customer_id"], CUSTOMER)
    w = workers()
    status, body = http("POST", w.url + "/api/incidents", DECLARE, token=API_TOKEN)
    assert status == 201, body
    (entry,) = await smtp.wait_for(1, timeout=30, incident=body["incident_id"])
    link = smtp.message(entry["n"])["List-Unsubscribe"].strip("<>")
    path = "/" + link.split("/", 3)[3]
    assert path.startswith("/unsubscribe/")
    token = path.removeprefix("/unsubscribe/")
    # customer, recipient, locale, address, signature (domain/links.py contact_token)
    cid, recipient, locale, address, signature = token.split(".")
    middle = f"{recipient}.{locale}"
    assert send(w, "GET", path)[0] == 200   # the real link works
    for altered in (f"{cid}=.{middle}.{address}.{signature}", f"{cid}==.{middle}.{address}.{signature}",
                    f"{cid}.{middle}.{address}=.{signature}", f"{cid}.{middle}.{address}.{signature}=",
                    f"{cid}.{middle}.{address}.{signature}==", f"{cid}%3D.{middle}.{address}.{signature}",
                    f"{cid[:2]}={cid[2:]}.{middle}.{address}.{signature}",
                    f"{cid}.{recipient}.{'ja' if locale == 'en' else 'en'}.{address}.{signature}",
                    f"{cid}.{middle}.{address}.{signature[:-1]}{'B' if signature[-1] == 'A' else 'A'}"):
        for method in ("GET", "POST"):
            status, answer = send(w, method, "/unsubscribe/" + altered)
            assert status == 404, (method, altered, status)
    assert send(w, "GET", path)[0] == 200   # and the real one still works


def test_a_huge_title_inside_the_body_bound_is_a_4xx(worker):
    body = json.dumps({**DECLARE, "title": "T" * 1_000_000}).encode()
    assert len(body) < MIB
    status, answer = send(worker, "POST", "/api/incidents", body, AUTH)
    assert status in (400, 413), (status, answer[:300])
    assert json.loads(answer)["error"]


def test_odd_paths_and_methods_are_4xx(worker, incident_id):
    for method, path in [("GET", "/api/incidents/%C3%A9"), ("GET", "/api/incidents/" + "x" * 5000),
                         ("GET", "/api/incidents/%00"), ("HEAD", f"/api/incidents/{incident_id}/updates"),
                         ("PUT", "/api/incidents"), ("DELETE", f"/api/incidents/{incident_id}"),
                         ("GET", f"/api/incidents/{incident_id}/resolve"), ("GET", "/nothing-here")]:
        status, answer = send(worker, method, path)
        assert 400 <= status < 500, (method, path[:60], status, answer[:200])
    for path in ("/api/incidents/%C3%A9/updates", "/api/incidents/" + "x" * 5000 + "/resolve"):
        status, answer = send(worker, "POST", path, json.dumps({"message": "x"}).encode(), AUTH)
        assert status in (400, 404), (path[:60], status, answer[:200])
