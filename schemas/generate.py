"""Generate the committed JSON Schema files: ``python -m schemas.generate``."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.alerts import Alert
from schemas.channels import CHANNEL_NAMES, CHANNELS, CHANNELS_VERSION
from schemas.frames import FrameBatch
from schemas.rejected import Rejected
from schemas.risk import RiskScore

OUT = Path(__file__).parent / "json"
MODELS = {"frame_batch": FrameBatch, "risk_score": RiskScore, "alert": Alert, "rejected": Rejected}


def channels_document() -> dict:
    return {
        "channels_version": CHANNELS_VERSION,
        "channels": [
            {"index": i, "name": c.name, "segment": c.segment, "quantity": c.quantity, "unit": c.unit,
             "min": c.lo, "max": c.hi}
            for i, c in enumerate(CHANNELS)
        ],
        "order": list(CHANNEL_NAMES),
    }


def render() -> dict[str, str]:
    """File name -> exact text of every generated file."""
    files = {}
    for name, model in MODELS.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://injury-monitor.local/schemas/{name}.schema.json"
        files[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    files["channels.json"] = json.dumps(channels_document(), indent=2) + "\n"
    return files


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for fname, text in render().items():
        (OUT / fname).write_text(text)
        print(f"wrote {OUT / fname}")


if __name__ == "__main__":
    main()
