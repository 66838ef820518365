"""``injury-monitor bench stream`` arguments -> BenchConfig."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.bench.cli import build_parser, config_from


def test_flags_become_a_config():
    args = build_parser().parse_args(["--contenders", "floor,faust", "--athletes", "50,100", "--no-drain",
                                      "--encoding", "binary", "--fetch-wait-ms", "10", "--profile", "py-spy",
                                      "--out", "x/y"])
    cfg = config_from(args)
    assert cfg.contenders == ("floor", "faust") and cfg.athletes == (50, 100)
    assert not cfg.drain and cfg.live and cfg.encoding == "binary" and cfg.fetch_wait_ms == 10
    assert cfg.profile == "py-spy" and cfg.out_dir == Path("x/y")
    assert config_from(build_parser().parse_args([])).live_contenders == ("faust", "quix")


def test_unknown_contender_is_refused(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--contenders", "floor,spark"])
    assert "spark" in capsys.readouterr().err
