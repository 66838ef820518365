"""The configuration table: every ``INJURY_MONITOR_*`` variable, generated from the settings classes.

``python -m stream.config_doc`` rewrites the table between the markers in README.md;
tests/stream/test_config_doc.py fails when it is stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic_settings import BaseSettings

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- config:start -->", "<!-- config:end -->"


def _classes() -> dict[str, type[BaseSettings]]:
    from dashboard.settings import DashboardSettings
    from stream.settings import DemoSettings, ImagingSettings, ServiceSettings, SimulatorSettings, WorkerSettings

    return {"all": ServiceSettings, "worker": WorkerSettings, "simulate": SimulatorSettings,
            "embed": ImagingSettings, "demo": DemoSettings, "dashboard": DashboardSettings}


def _default(field) -> str:
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if "Secret" in str(field.annotation):
        return "unset (secret)"
    return f"`{json.dumps(value, default=str)}`"


def render() -> str:
    classes = _classes()
    shared = set(classes["all"].model_fields)
    rows: dict[str, dict] = {}
    for service, cls in classes.items():
        for name, field in cls.model_fields.items():
            if service != "all" and name in shared and service != "dashboard":
                continue
            row = rows.setdefault(name, {"services": [], "default": _default(field),
                                         "description": field.description or ""})
            row["services"].append(service)
            if not row["description"] and field.description:
                row["description"] = field.description
    lines = ["| variable | used by | default | meaning |", "| --- | --- | --- | --- |"]
    for name in sorted(rows):
        r = rows[name]
        lines.append(f"| `INJURY_MONITOR_{name.upper()}` | {', '.join(r['services'])} | {r['default']} | "
                     f"{r['description'].replace('|', '/')} |")
    return "\n".join(lines)


def updated_readme(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{render()}\n{END}{tail}"


def main() -> None:
    README.write_text(updated_readme(README.read_text()))
    print(f"updated the configuration table in {README}")


if __name__ == "__main__":
    main()
