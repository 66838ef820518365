"""The committed JSON Schema files are exactly what the models generate."""

from __future__ import annotations

from schemas.generate import OUT, render


def test_committed_json_schemas_do_not_drift():
    for fname, text in render().items():
        path = OUT / fname
        assert path.exists(), f"{path} missing: run python -m schemas.generate"
        assert path.read_text() == text, f"{path} is stale: run python -m schemas.generate and commit"
