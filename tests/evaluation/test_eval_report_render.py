"""``report.html`` is self-contained and renders in headless Chromium: every embedded image
decodes, the console stays silent, the page is not blank.

Chromium comes from Debian's ``chromium`` package. Without it the render test is skipped,
unless ``NOA_REQUIRE_CHROMIUM=1`` (CI), where its absence is a failure.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

IMG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
CONSOLE = re.compile(r":CONSOLE[^\]]*\]\s*(.*)")
BROWSERS = ("chromium", "chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's path; decided before the (costlier) evaluation fixture is built."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    reason = ("headless Chromium not found (Debian package `chromium`: apt-get install -y "
              "chromium)")
    if os.environ.get("NOA_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"NOA_REQUIRE_CHROMIUM=1 but {reason}")
    pytest.skip(reason)


def _decode(b64: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
    img.load()  # decodes every pixel: a truncated PNG raises here
    return img


def test_the_html_is_self_contained_and_every_image_decodes(evaluated: dict[str, Any]) -> None:
    text = (evaluated["out"] / "report.html").read_text()
    assert "<script" not in text
    assert not re.search(r'(src|href)="(?!data:)', text)  # nothing fetched from anywhere
    images = IMG.findall(text)
    assert len(images) == 4  # error vs step, token histograms, contingency, frames
    for b64 in images:
        img = _decode(b64)
        assert img.format == "PNG" and min(img.size) > 50


def test_chromium_renders_the_report(chromium: str, evaluated: dict[str, Any],
                                     tmp_path: Path) -> None:
    browser = chromium
    page = (evaluated["out"] / "report.html").resolve()
    shot = tmp_path / "report.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
           "--window-size=1200,3000", "--enable-logging=stderr", "--v=0", page.as_uri()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                         env={**os.environ, "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-2000:]
    # Chromium logs every console message (log, warning, error, uncaught exception) as a
    # CONSOLE line with --enable-logging=stderr; the report has no scripts, so expect none.
    console = [m.group(1) for m in map(CONSOLE.search, run.stderr.splitlines()) if m]
    assert console == []
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (3000, 1200)
    assert pixels.std() > 10  # not a blank page
    assert (pixels < 200).mean() > 0.02  # a real share of the page is drawn on
