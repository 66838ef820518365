"""Prometheus metrics of the worker (names are the ops contract: ops/grafana, docs/deploy.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter("injury_messages_total", "FrameBatch messages consumed", registry=r)
        self.frames = Counter("injury_frames_total", "Frames accepted", registry=r)
        self.rejected = Counter("injury_rejected_total", "Messages sent to the DLQ", ["reason"], registry=r)
        self.scored = Counter("injury_windows_scored_total", "Windows scored", registry=r)
        self.skipped = Counter("injury_windows_skipped_total", "Windows not scored", ["reason"], registry=r)
        self.batch_size = Histogram("injury_batch_size", "Windows per inference call", registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.inference = Histogram("injury_inference_seconds", "Inference time per micro-batch", registry=r,
                                   buckets=LATENCY_BUCKETS)
        self.end_to_score = Histogram("injury_end_to_score_seconds", "Window end (event time) to score written",
                                      registry=r, buckets=LATENCY_BUCKETS)
        self.lag = Gauge("injury_consumer_lag", "Consumer lag (messages)", ["topic", "partition"], registry=r)
        self.embedding = Counter("injury_embedding_cache_total", "Image embedding lookups", ["result"], registry=r)
        self.alerts = Counter("injury_alerts_total", "Alerts emitted", ["state"], registry=r)
        self.publish_errors = Counter("injury_publish_errors_total", "Scores/alerts Kafka did not take", registry=r)
        self.sink_errors = Counter("injury_sink_errors_total", "Failed writes", ["sink"], registry=r)
        self.queue = Gauge("injury_window_queue", "Windows waiting for inference", registry=r)
