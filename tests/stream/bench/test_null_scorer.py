"""The null scorer goes through the real scoring pipeline and produces valid RiskScores."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from schemas.channels import N_CHANNELS
from stream.alerting import AlertPolicy
from stream.bench.null_scorer import NullScorer
from stream.metrics import WorkerMetrics
from stream.pipeline import Levels, ScoringPipeline
from stream.sinks.memory import MemorySink
from stream.windowing import Window


def test_null_scorer_scores_through_the_pipeline():
    scorer = NullScorer(time_steps=50, attn_step_s=0.04, encoder_version="enc-1", prob=0.2)
    windows = [Window(f"a{i}", "s", 1000 + 50 * i, 100.0, np.zeros((200, N_CHANNELS), np.float32), 0.0, (), 0.0)
               for i in range(3)]
    sink = MemorySink()

    async def publish(scored, alerts):
        published.extend(s.score for s in scored)

    published: list = []
    pipe = ScoringPipeline(scorer=scorer, sink=sink, publish=publish, policy=AlertPolicy(0.6, 2, 0.45, 4),
                           levels=Levels(), executor=ThreadPoolExecutor(1), metrics=WorkerMetrics())
    scored = asyncio.run(pipe.run_batch(windows))
    assert [s.score.risk for s in scored] == [0.2, 0.2, 0.2]
    assert {s.score.athlete_id for s in scored} == {"a0", "a1", "a2"}
    assert published and all(p.model_version == "null" and not p.image_used for p in published)
    assert len(scored[0].score.attention) == 5
    assert scorer.score(np.zeros((4, 200, N_CHANNELS), np.float32), None)[3].prob == 0.2


def test_from_artifact_takes_shapes_and_versions_from_the_model(model_dir):
    from engine.artifact import ModelArtifact

    meta = ModelArtifact.load(model_dir).meta
    s = NullScorer.from_artifact(model_dir)
    assert s.encoder_version == meta.encoder_version
    assert s.model_version == f"null-{meta.model_version}"
    res = s.score(np.zeros((2, meta.window, N_CHANNELS), np.float32))[0]
    assert res.time_attn.shape == (meta.time_steps,) and abs(res.time_attn.sum() - 1) < 1e-5
