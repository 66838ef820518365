"""``injury-monitor demo``: one command brings the whole system up, shows live scores, stops cleanly."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import psutil
import pytest
import redis

from schemas import keys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _browser():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("Debian chromium + chromium-driver not installed (make browser)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--window-size=1400,1000"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def test_demo_reaches_live_scores_in_the_dashboard_and_leaves_nothing_behind(model_dir, artifacts_dir):
    env = {**os.environ, "INJURY_MONITOR_MODEL_DIR": str(model_dir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "demo", "--athletes", "4", "--duration", "40",
                             "--dashboard-port", "0"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: dict[str, str] = {}
    try:
        while len(lines) < 3:
            line = proc.stdout.readline()
            assert line, f"demo ended early: {lines}"
            m = re.match(r"^(kafka|redis|dashboard): (\S+)$", line.strip())
            if m:
                lines[m[1]] = m[2]
        assert re.match(r"127\.0\.0\.1:\d+$", lines["kafka"])
        r = redis.Redis.from_url(lines["redis"] + "/0")
        deadline = time.monotonic() + 45
        while r.hlen(keys.RISK_LATEST) < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert r.hlen(keys.RISK_LATEST) == 4, "not every simulated athlete was scored"

        driver = _browser()
        try:
            from selenium.webdriver.support.ui import WebDriverWait

            driver.get(lines["dashboard"])
            WebDriverWait(driver, 40).until(lambda d: all(f"ath-0{i}" in d.page_source for i in range(1, 5)))
            time.sleep(1.0)  # let the fragment paint its colours for the screenshot
            driver.save_screenshot(str(artifacts_dir / "demo-dashboard.png"))
        finally:
            driver.quit()
    finally:
        children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        proc.terminate()  # as Ctrl-C / SIGTERM would
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-2000:]
    assert "demo stopped" in out
    time.sleep(0.5)
    alive = [p for p in children if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"processes left behind: {alive}"
