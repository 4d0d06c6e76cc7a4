"""The public status page as a browser shows it (issue 17): headless Chromium loads a live worker's
``/status`` in Japanese and in English, at phone and desktop widths, with an incident on it. Each
picture must be the size asked and more than a blank page; the PNGs stay in the test's directory
for a person to look at (``devtools/screenshots.py`` takes the same pictures of every page and notice
from sample data). Skipped where no Chromium is installed."""

from __future__ import annotations

import shutil
import struct
import time
import zlib
from pathlib import Path

import pytest

from devtools.screenshots import screenshot
from tests.conftest import API_TOKEN, http

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
                                 reason="no Chromium on PATH")]

DECLARE = {"severity": "major", "title": {"en": "API errors", "ja": "APIのエラー"},
           "message": {"en": "We are investigating elevated error rates.", "ja": "エラー率の上昇を調査しております。"},
           "components": ["api"], "regions": ["ap-northeast-1"]}


def png_picture(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values of the decoded rows): a blank page has very few."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


async def test_the_status_page_in_both_languages_at_phone_and_desktop_widths(workers, tmp_path):
    worker = workers()
    status, incident = http("POST", worker.url + "/api/incidents", DECLARE, token=API_TOKEN)
    assert status == 201, incident
    deadline = time.monotonic() + 30
    while incident["incident_id"] not in str(http("GET", worker.url + "/status.json")[1]):
        assert time.monotonic() < deadline, "the incident never reached the status page"
        time.sleep(0.2)
    for lang, words in (("ja", "APIのエラー"), ("en", "API errors")):
        status, page = http("GET", f"{worker.url}/status?lang={lang}&tz=Asia/Tokyo")
        assert status == 200 and words in page
        for width, height in ((390, 844), (1280, 900)):
            png = tmp_path / f"status-{lang}-{width}.png"
            screenshot(f"{worker.url}/status?lang={lang}&tz=Asia/Tokyo", png, width, height)
            w, h, shades = png_picture(png)
            assert (w, h) == (width, height), (png, w, h)
            assert shades > 16, f"{png} looks blank ({shades} distinct values)"
