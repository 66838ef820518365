"""The live page in real headless Chromium (Selenium) against ``streamlit run`` and a real Redis.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (skipped without them).
Screenshots go to ``test-artifacts/`` (the README's copies live in ``docs/img/``).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from dashboard import data, sample
from dashboard.launch import run_dashboard
from dashboard.settings import DashboardSettings
from schemas import keys
from schemas.risk import RiskScore, score_id
from stream.embedded import free_port, wait_port
from stream.sinks.base import Scored

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 30

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="needs headless Chromium: apt-get install -y chromium chromium-driver"),
]


@pytest.fixture
def dashboard_url(redis_url, tmp_path):
    port = free_port()
    log = tmp_path / "streamlit.log"
    proc = run_dashboard(DashboardSettings(redis_url=redis_url, refresh_s=0.5), port, "127.0.0.1",
                         stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", port, 60, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1500"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _late_score(athlete_id: str, session_id: str) -> RiskScore:
    now = time.time()
    return RiskScore(score_id=score_id(athlete_id, now), athlete_id=athlete_id, session_id=session_id,
                     window_start=now - 2, window_end=now, risk=0.99, level="high", model_version="m",
                     processing_ms=1.0, latency_ms=10.0, scored_at=now)


def _squad(driver) -> list[tuple[str, str]]:
    """(athlete, risk cell text) of every squad row, in page order."""
    return [tuple(x) for x in driver.execute_script(
        "return Array.from(document.querySelectorAll('#im-squad tr.im-row'))"
        ".map(r => [r.dataset.athlete, r.cells[2].textContent]);")]


def test_squad_athlete_view_and_acknowledgement(redis_url, dashboard_url, browser, artifacts_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    now = time.time()
    batches, written = sample.build(athletes=8, windows=70, end=now + 15, scored_at=now + 15,
                                    traces="all")
    with sample.Feeder(redis_url, batches):
        # Squad: every athlete listed, highest risk first. The table is redrawn every refresh, so
        # it is read in one script call (no element handle outlives a redraw).
        browser.get(dashboard_url)
        wait.until(lambda d: len(_squad(d)) == 8)
        table = _squad(browser)
        assert sorted(a for a, _ in table) == written.athletes
        risks = [float(risk) for _, risk in table]
        assert risks == sorted(risks, reverse=True)

        # Live: a new athlete appears through the fragment's timer, without a page load.
        browser.execute_script("window.__imMarker = 'same page';")
        asyncio.run(sample.write_async(redis_url, [([Scored(_late_score("zz-late", written.session_id))], [], {})]))
        wait.until(lambda d: "zz-late" in dict(_squad(d)))
        assert browser.execute_script("return window.__imMarker;") == "same page"
        browser.save_screenshot(str(artifacts_dir / "dashboard-squad.png"))

        # Athlete: the squad row's link opens the athlete view with its timeline and traces.
        browser.execute_script('document.querySelector(\'#im-squad tr[data-athlete="ath-01"] a\').click();')
        wait.until(lambda d: "ath-01 · session" in d.find_element(By.TAG_NAME, "body").text)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"] canvas, '
                                                                  '[data-testid="stVegaLiteChart"] svg')) >= 2)
        assert "athlete=ath-01" in browser.current_url
        assert "Risk over the session" in browser.find_element(By.TAG_NAME, "body").text
        browser.set_window_size(1400, 2000)  # the whole athlete view in one screenshot
        time.sleep(0.5)  # let Vega finish painting the marks for the screenshot (elements are already there)
        browser.save_screenshot(str(artifacts_dir / "dashboard-athlete.png"))
        browser.set_window_size(1400, 1500)

        # Alerts: acknowledge the alert the form offers first; the acknowledgement lands in Redis.
        browser.get(f"{dashboard_url}/?view=alerts")
        name = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, 'input[aria-label="Your name"]')))
        name.send_keys("Coach Selenium")
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, 'input[aria-label="Note (optional)"]'))
                   ).send_keys("checked knee")
        wait.until(ec.element_to_be_clickable((By.XPATH, '//button[normalize-space()="Acknowledge"]'))).click()
        r = data.connect(redis_url)

        def acked(_) -> str | None:  # the feeder may raise new alerts meanwhile: look at every one kept
            ids = {a.alert_id for a in data.recent_alerts(r, data.athlete_ids(r))}
            return next((i for i in ids if r.hget(keys.alert_ack(i), "by") == b"Coach Selenium"), None)

        target = WebDriverWait(browser, WAIT_S).until(acked)
        assert r.hget(keys.alert_ack(target), "note") == b"checked knee"
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#im-alert-history"), "Coach Selenium at"))
        browser.save_screenshot(str(artifacts_dir / "dashboard-alerts.png"))
