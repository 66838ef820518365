"""Fault injection: the real worker with a scorer that sleeps while a flag file exists.

    IM_FAULT_SLOW_FILE=/tmp/slow IM_FAULT_SLOW_S=12 python -m tests.reliability.slow_worker

Everything else is ``injury-monitor worker`` (settings from ``INJURY_MONITOR_*``); only
``stream.worker.run_worker(wrap_scorer=...)`` is used to slow the model down. A test
creates the flag file to start the fault and deletes it to end it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from stream.settings import WorkerSettings
from stream.worker import run_worker


class SlowScorer:
    """Delegates to the real scorer; each ``score`` call sleeps ``delay_s`` first while ``flag`` exists."""

    def __init__(self, inner, flag: Path, delay_s: float) -> None:
        self.inner, self.flag, self.delay_s = inner, flag, delay_s
        self.slow_calls = 0

    def score(self, windows, images):
        if self.flag.exists():
            self.slow_calls += 1
            time.sleep(self.delay_s)
        return self.inner.score(windows, images)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"SlowScorer({self.delay_s:g} s per batch while {self.flag} exists)"


def main() -> None:
    settings = WorkerSettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    flag = Path(os.environ["IM_FAULT_SLOW_FILE"])
    delay = float(os.environ.get("IM_FAULT_SLOW_S", "12"))
    run_worker(settings, wrap_scorer=lambda s: SlowScorer(s, flag, delay))


if __name__ == "__main__":
    main()
