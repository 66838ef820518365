"""Which third-party modules each shipped entry point can import, and which distribution gives each.

A static walk (``ast``), so lazy imports inside functions count too: a worker that imports
``confluent_kafka`` only when it builds its publisher still needs it installed. From each
entry point (a module, or one function of a module) the walk follows every first-party module
it imports, at any depth, plus module paths written as strings (``engine.imaging``'s lazy
table, the backend registry's ``"engine.backends.torch:TorchBackend"``). What it reaches
outside the project and the standard library is checked against the dependency closure of
``[project].dependencies`` in pyproject.toml: each requirement, then what the installed
distribution requires, recursively, without any ``extra == ...`` requirement.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("schemas", "stream", "engine", "dashboard")
_MODULE_STRING = re.compile(r"^(?:%s)(?:\.\w+)+(?::\w+)?$" % "|".join(FIRST_PARTY))

# The shipped entry points: every ``injury-monitor`` subcommand an image or an operator runs,
# and the page Streamlit executes. Not here, on purpose: ``demo`` (the ``demo`` extra: the
# embedded broker and Redis), ``bench`` and ``report`` (development tools, the ``dev`` extra;
# they say so when a tool is missing).
ENTRY_POINTS: dict[str, list[str]] = {
    "injury-monitor (parser)": ["stream.cli:main", "stream.cli:build_parser", "stream.cli:_settings",
                                "stream.cli:_logging"],
    "worker": ["stream.cli:cmd_worker"],
    "simulate": ["stream.cli:cmd_simulate"],
    "embed (ingest)": ["stream.cli:cmd_embed"],
    "dashboard": ["stream.cli:cmd_dashboard", "dashboard.app"],
    "train": ["stream.cli:cmd_train"],
    "evaluate": ["stream.cli:cmd_evaluate"],
    "export": ["stream.cli:cmd_export"],
    "build-engine": ["stream.cli:cmd_build_engine"],
}

# Imports a runtime path may make although no runtime dependency provides them: each is
# lazy, tried only where its extra is installed, and fails with a message naming the extra.
OPTIONAL: dict[str, str] = {
    "tensorrt": "gpu",  # the TensorRT backend and build-engine, on a GPU node
}


@dataclass
class Walk:
    modules: set[str] = field(default_factory=set)  # first-party modules reached
    third_party: dict[str, set[str]] = field(default_factory=dict)  # top-level name -> first-party importers


def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level:
        parts = importer.split(".")
        base = parts if is_package else parts[:-1]
        base = base[: len(base) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    names = [mod]
    # ``from pkg import sub``: sub may be a module
    names += [f"{mod}.{a.name}" for a in node.names if a.name != "*"]
    return names


def _imports(tree: ast.AST, importer: str, is_package: bool) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.update(_resolve(importer, is_package, node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.match(node.value):
            out.add(node.value.split(":")[0])
    return out


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def walk(entries: list[str]) -> Walk:
    """Everything reachable from ``entries`` ("pkg.mod" or "pkg.mod:function")."""
    w = Walk()
    todo: list[tuple[str, set[str]]] = []

    def note(importer: str, names: set[str]) -> None:
        for name in names:
            top = name.split(".")[0]
            if top in FIRST_PARTY:
                for mod in _parents(name):  # importing a.b.c runs a/__init__, a/b/__init__ too
                    if _module_file(mod) is not None and mod not in w.modules:
                        w.modules.add(mod)
                        todo.append((mod, set()))
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                w.third_party.setdefault(top, set()).add(importer)

    for entry in entries:
        mod, _, func = entry.partition(":")
        path = _module_file(mod)
        assert path is not None, f"entry point {entry}: no module {mod}"
        tree = ast.parse(path.read_text(), str(path))
        is_pkg = path.name == "__init__.py"
        if func:
            # the module's top level runs on import; of its functions, only this one
            top = ast.Module(body=[n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                               ast.ClassDef))], type_ignores=[])
            fn = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == func]
            assert fn, f"entry point {entry}: no function {func}"
            note(mod, _imports(top, mod, is_pkg) | _imports(fn[0], mod, is_pkg))
            note(mod, {p for p in _parents(mod)[:-1]})
        else:
            note(mod, {mod})
    while todo:
        mod, _ = todo.pop()
        path = _module_file(mod)
        note(mod, _imports(ast.parse(path.read_text(), str(path)), mod, path.name == "__init__.py"))
    return w


# ----------------------------------------------------------------------------- dependencies

def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _applies(req: Requirement) -> bool:
    """True for a requirement installed without extras on this platform."""
    if req.marker is None:
        return True
    return req.marker.evaluate({**default_environment(), "extra": ""})


def closure(requirements: list[str]) -> dict[str, str]:
    """canonical distribution name -> the direct requirement that brings it in (itself if direct)."""
    direct = [r for r in map(Requirement, requirements) if _applies(r)]
    seen = {canonicalize_name(r.name): canonicalize_name(r.name) for r in direct}
    todo = [(r, canonicalize_name(r.name)) for r in direct]
    while todo:
        req, via = todo.pop(0)
        try:
            sub = md.requires(req.name) or []
        except md.PackageNotFoundError:
            continue  # not installed here, so its own requirements are unknown; its imports show up as gaps
        for s in map(Requirement, sub):
            name = canonicalize_name(s.name)
            if name not in seen and _applies(s):
                seen[name] = via
                todo.append((s, via))
    return seen


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    return md.packages_distributions()  # reads every installed distribution's RECORD: once


def distributions_of(module: str) -> list[str]:
    return sorted({canonicalize_name(d) for d in _packages_distributions().get(module, [])})


@dataclass
class Check:
    module: str
    entry_points: list[str]
    distributions: list[str]
    via: str | None  # direct requirement that satisfies it, or None for a gap
    optional: str | None = None  # the extra that provides it, for OPTIONAL modules

    def line(self) -> str:
        dist = ",".join(self.distributions) or "not installed"
        if self.via is None:
            how = f"extra [{self.optional}], lazy" if self.optional else "GAP: in no runtime dependency"
        elif self.via in self.distributions:
            how = "direct dependency"
        else:
            how = f"via {self.via}"
        return f"{self.module:<20} {dist:<28} {how:<28} {', '.join(self.entry_points)}"


def check(requirements: list[str], entry_points: dict[str, list[str]] = ENTRY_POINTS,
          optional: dict[str, str] = OPTIONAL) -> list[Check]:
    deps = closure(requirements)
    users: dict[str, list[str]] = {}
    for ep, entries in entry_points.items():
        for module in walk(entries).third_party:
            users.setdefault(module, []).append(ep)
    out = []
    for module in sorted(users, key=str.lower):
        dists = distributions_of(module)
        via = next((deps[d] for d in dists if d in deps), None)
        out.append(Check(module, users[module], dists, via, optional.get(module) if via is None else None))
    return out


def gaps(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.via is None and c.optional is None]
