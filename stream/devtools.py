"""Development tools (benchmarks, report, soak, screenshots) run from a plain install.

Their extra packages (psutil, selenium, ...) are in the ``dev`` extra and the embedded
services in ``demo``; a plain ``pip install injury-monitor`` has neither. A tool that reaches
a missing package says which one and how to install it, instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

FIRST_PARTY = frozenset({"schemas", "stream", "engine", "dashboard"})
TOOLS_EXTRA = "pip install 'injury-monitor[dev,demo]'"


def missing_package(exc: ModuleNotFoundError) -> str | None:
    """The top-level module a tool lacks, or None when the error is the project's own."""
    top = (exc.name or "").split(".")[0]
    return None if not top or top in FIRST_PARTY else top


def run_tool(name: str, main: Callable[[], int]) -> int:
    """``main()``, or exit code 2 and one line on stderr when it needs a package that is not installed."""
    try:
        return main()
    except ModuleNotFoundError as exc:
        missing = missing_package(exc)
        if missing is None:
            raise
        print(f"{name}: needs the Python module {missing!r}, which is not installed; development tools need "
              f"the dev and demo extras: {TOOLS_EXTRA}", file=sys.stderr)
        return 2
