"""ONNX Runtime backend specifics: options, sharding (data-parallel sessions)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from engine.backends.onnxruntime import SHARD_MIN_ROWS, OnnxRuntimeBackend  # noqa: E402


def test_options(backend_artifact) -> None:
    art = backend_artifact()
    assert OnnxRuntimeBackend(art).label == "onnxruntime-cpu-2shards"  # threads=2 -> 2 single-thread sessions
    assert OnnxRuntimeBackend(art, threads=1).label == "onnxruntime-cpu"
    assert OnnxRuntimeBackend(art, threads=2, shards=1).label == "onnxruntime-cpu"
    assert OnnxRuntimeBackend(art, threads=8).shards == 2
    with pytest.raises(ValueError, match="shards"):
        OnnxRuntimeBackend(art, threads=2, shards=3)
    with pytest.raises(ValueError, match="threads"):
        OnnxRuntimeBackend(art, threads=0)


@pytest.mark.parametrize("b", [1, 2 * SHARD_MIN_ROWS - 1, 2 * SHARD_MIN_ROWS, 3 * SHARD_MIN_ROWS + 1, 50])
def test_sharded_equals_single_session(backend_artifact, make_inputs, b: int) -> None:
    inputs = make_inputs(b, seed=b)
    with OnnxRuntimeBackend(backend_artifact(), threads=1) as one, \
         OnnxRuntimeBackend(backend_artifact(), threads=3, shards=3, spin=False) as three:
        a, c = one.infer(*inputs), three.infer(*inputs)
    for x, y in zip((a.prob, a.time_attn, a.region_attn), (c.prob, c.time_attn, c.region_attn)):
        np.testing.assert_allclose(x, y, atol=1e-6, rtol=0)


def test_deactivate_stops_the_shard_threads(backend_artifact, make_inputs) -> None:
    be = OnnxRuntimeBackend(backend_artifact(), threads=2, shards=2)
    with be:
        be.infer(*make_inputs(2 * SHARD_MIN_ROWS))
        assert be._pool is not None
    assert be._pool is None and be._sessions == []
