"""A tiny JSON-over-HTTP client for the worker's API: used by ``outage dev``, the tests and the bench."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request


def call(method: str, url: str, body: dict | None = None, token: str | None = None,
         timeout: float = 10.0) -> tuple[int, dict | str]:
    """``(status, decoded JSON or text)``; HTTP errors are answers, not exceptions."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def post_form(url: str, fields: dict[str, str], timeout: float = 10.0) -> tuple[int, str]:
    """A browser's form ``POST`` (``application/x-www-form-urlencoded``): ``(status, page text)``;
    HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
