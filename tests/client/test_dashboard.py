"""The dashboard page over a real training run: served by the API, drawn by headless Chromium.

Chromium (Debian's `chromium`) renders the page with the session's trained model; the test reads the
DOM the page's JavaScript built (heatmap cells, lineage nodes, Ω table) and checks the screenshot's
pixels for the heatmap's colours and the lineage's nodes. Without chromium the browser test skips.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import httpx
import pytest

from tests.client.conftest import Trained
from tests.conftest import Service

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LINEAGE_BLUE = (0x3A, 0x6D, 0xF0)


def test_the_page_is_served(client: httpx.Client) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for part in ('id="heatmap"', 'id="lineage-graph"', 'id="omega"', 'id="job-list"', "/v1/models"):
        assert part in page.text


def chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         f"--user-data-dir={profile}", "--window-size=1400,1500", "--virtual-time-budget=8000", *args, url],
        capture_output=True, text=True, timeout=90,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_chromium_draws_heatmap_and_lineage_of_a_real_run(service: Service, trained: Trained, tmp_path: Path) -> None:
    url = f"{service.url}/dashboard#model={trained.model}"
    dom = chromium(url, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-ready="true"' in html, html[-3000:]
    cells = re.findall(r'<td class="cell" style="background:\s*([^"]+)"[^>]*>([0-9.]+)</td>', html)
    assert len(cells) == 3, cells  # a lower triangle: 1 task after v1, 2 after v2
    assert all(0 <= float(acc) <= 1 for _, acc in cells)
    assert len(re.findall(r'<g class="version(?: head)?" data-version="\d+"', html)) == 3
    assert re.search(rf'<g class="version head" data-version="{trained.versions[-1]}"', html)
    assert re.search(r'id="avg-acc">0\.\d{4}<', html) and 'id="omega-table"' in html and "omega-hist-svg" in html

    shot = tmp_path / "dashboard.png"
    taken = chromium(url, tmp_path / "profile2", f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    width, height, pixels = read_png(shot.read_bytes())
    assert (width, height) == (1400, 1500)
    greenish = sum(1 for r, g, b in pixels if g > 150 and g > r + 60 and g > b + 60)
    lineage = sum(1 for p in pixels if all(abs(c - t) < 12 for c, t in zip(p, LINEAGE_BLUE, strict=True)))
    assert greenish > 1000, "the heatmap's high-accuracy cells are not on the screenshot"
    assert lineage > 300, "the lineage nodes (and Ω bars) are not on the screenshot"


def read_png(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """RGB pixels of an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes), without Pillow."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat, header = 8, b"", None
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunk = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    channels = 4 if color == 6 else 3
    raw, stride = zlib.decompress(idat), width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(line)
        previous = line
    pixels = [tuple(row[x:x + 3]) for row in rows for x in range(0, stride, channels)]
    return width, height, pixels
