"""Screenshots of the three views for the docs (``python -m dashboard.screenshots docs/img``).

A private Redis is filled through the worker's sink (:mod:`dashboard.sample`), and a real
``streamlit run`` is shot in headless Chromium. The refresh interval is long, so no
screenshot catches a panel mid-rerun (Streamlit fades stale elements while a rerun runs).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from dashboard import sample
from dashboard.bench import CHROMEDRIVER, CHROMIUM
from dashboard.exceptions import DashboardError
from dashboard.launch import run_dashboard
from dashboard.settings import DashboardSettings

PAINT_S = 2.0  # Vega draws after its element appears; there is no DOM event that marks "painted"


def take(out_dir: Path, *, athlete: str = "ath-11", session_id: str = "training-2026-11-26") -> list[Path]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from stream.embedded import EmbeddedRedis, free_port, wait_port

    if not CHROMIUM.exists():
        raise DashboardError(f"screenshots need headless Chromium at {CHROMIUM}")
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = []
    with EmbeddedRedis() as server:
        sample.fill(server.url, 12, 60, end=time.time(), session_id=session_id, traces="all")
        port = free_port()
        proc = run_dashboard(DashboardSettings(redis_url=server.url, refresh_s=60, stale_after_s=120), port,
                             "127.0.0.1", stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        opts = Options()
        opts.binary_location = str(CHROMIUM)
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars"):
            opts.add_argument(arg)
        driver = None
        try:
            wait_port("127.0.0.1", port, 60, proc)
            driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
            wait = WebDriverWait(driver, 60)
            base = f"http://127.0.0.1:{port}"
            views = [
                ("dashboard-squad.png", "/", (1400, 900), "#im-squad tr.im-row"),
                ("dashboard-athlete.png", f"/?view=athlete&athlete={athlete}", (1400, 2000),
                 '[data-testid="stVegaLiteChart"] svg, [data-testid="stVegaLiteChart"] canvas'),
                ("dashboard-alerts.png", "/?view=alerts", (1400, 1000), "#im-alert-history"),
            ]
            for name, path, size, ready in views:
                driver.set_window_size(*size)
                driver.get(base + path)
                wait.until(lambda d, css=ready: d.find_elements(By.CSS_SELECTOR, css))
                time.sleep(PAINT_S)
                driver.save_screenshot(str(out_dir / name))
                shots.append(out_dir / name)
        finally:
            if driver is not None:
                driver.quit()
            proc.terminate()
            proc.wait(20)
    return shots


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dashboard.screenshots", description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path, nargs="?", default=Path("docs/img"))
    args = p.parse_args(argv)
    for path in take(args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    from stream.devtools import run_tool

    raise SystemExit(run_tool("python -m dashboard.screenshots", main))
