"""Settings of the stream services. Built once in ``main()`` and passed down.

Every field can be set by an environment variable ``INJURY_MONITOR_<FIELD>`` (upper case)
or by the matching CLI flag. No library module reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_DIR = Path(".cache/models/default")


class ServiceSettings(BaseSettings):
    """What every service that talks to Kafka and Redis needs."""

    model_config = SettingsConfigDict(env_prefix="INJURY_MONITOR_", frozen=True, extra="ignore")

    kafka_url: str = Field("kafka://127.0.0.1:9092", description="Bootstrap servers, kafka://host:port[;host:port]")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL (redis:// or rediss://)")
    kafka_security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    kafka_sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    redis_password: SecretStr | None = Field(None, description="Redis AUTH password (overrides the URL's)")
    hz: float = Field(100.0, gt=0, description="Sample rate of the stream")
    log_level: str = "INFO"

    @property
    def bootstrap_servers(self) -> str:
        """``kafka://a:1;b:2`` -> ``a:1,b:2`` (the aiokafka / librdkafka form)."""
        url = self.kafka_url
        for scheme in ("kafka://", "tcp://", "PLAINTEXT://"):
            url = url.replace(scheme, "")
        return ",".join(p.strip().rstrip("/") for p in url.replace(";", ",").split(",") if p.strip())


class WorkerSettings(ServiceSettings):
    app_id: str = Field("injury-monitor", description="Faust app id = Kafka consumer group")
    partitions: int = Field(6, ge=1, description="Partitions of the topics created at start")
    replication_factor: int = Field(1, ge=1)
    window_s: float = Field(2.0, gt=0)
    hop_s: float = Field(0.5, gt=0)
    grace_s: float = Field(1.0, ge=0, description="Out-of-order tolerance; older batches go to the DLQ as late")
    max_missing_fraction: float = Field(0.2, ge=0, le=1, description="Windows with more interpolated frames are not scored")
    max_gap_s: float = Field(0.25, gt=0, description="Longest gap that is interpolated")
    idle_timeout_s: float = Field(10.0, gt=0, description="Silence after which an athlete's partial window is discarded")
    window_stagger: bool = Field(True, description="Offset each athlete's hop grid by a hash of its id (windows end "
                                                   "spread over the hop, not all at once); every worker must agree")
    max_clock_skew_s: float = Field(300.0, gt=0, description="Max t0 in the future")
    max_age_s: float = Field(7 * 86400.0, gt=0, description="Max age of t0 in the past")
    max_batch: int = Field(64, ge=1, description="Micro-batch: most windows per inference call")
    max_wait_ms: float = Field(5.0, ge=0, description="Micro-batch: longest wait to fill a batch")
    backend: str = Field("onnxruntime", description="onnxruntime | torch | torch-cuda | torch-cuda-fp16 | "
                                                    "tensorrt | tensorrt-fp16 | tensorrt-fp32 | auto")
    engine_path: Path | None = Field(None, description="TensorRT engine (default <model_dir>/engines/model-fp16.engine)")
    engine_rebuild: bool = Field(False, description="Rebuild a missing or mismatched TensorRT engine at start")
    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="Model artifact folder (trained on first run if missing)")
    inference_threads: int = Field(2, ge=1)
    history_cap: int = Field(3600, ge=10, description="Risk history entries kept per athlete (30 min at 2/s)")
    level_moderate: float = Field(0.35, ge=0, le=1)
    level_high: float = Field(0.6, ge=0, le=1)
    alert_raise: float = Field(0.6, ge=0, le=1, description="Raise when risk >= this ...")
    alert_raise_windows: int = Field(2, ge=1, description="... for this many consecutive windows")
    alert_clear: float = Field(0.45, ge=0, le=1, description="Clear when risk < this ...")
    alert_clear_windows: int = Field(4, ge=1, description="... for this many consecutive windows")
    embedding_ttl_s: float = Field(60.0, gt=0, description="How long a looked-up image embedding is reused")
    web_port: int = Field(6066, ge=0, description="Worker HTTP port (health, metrics)")
    web_bind: str = "127.0.0.1"
    session_timeout_s: float = Field(10.0, gt=0, description="Kafka group session timeout (rebalance ~ half)")
    fetch_max_wait_ms: int = Field(10, ge=0, le=5000, description="Longest wait of an empty fetch (Faust: 1500)")

    def window_config(self):
        """The windowing rules these settings describe (:class:`stream.windowing.WindowConfig`)."""
        from stream.windowing import WindowConfig

        return WindowConfig(hz=self.hz, window_s=self.window_s, hop_s=self.hop_s, grace_s=self.grace_s,
                            max_missing_fraction=self.max_missing_fraction, max_gap_s=self.max_gap_s,
                            idle_timeout_s=self.idle_timeout_s, stagger=self.window_stagger)


class SimulatorSettings(ServiceSettings):
    athletes: int = Field(12, ge=1)
    duration_s: float | None = Field(None, description="Stop after this many seconds (default: run until Ctrl-C)")
    frames_per_message: int = Field(10, ge=1, le=1000)
    encoding: str = Field("json", pattern="^(json|binary)$", description="Wire encoding of FrameBatch messages")
    phase_hop_s: float = Field(0.5, ge=0, description="Cut each athlete's messages on its staggered window grid of "
                                                      "this hop (the worker's hop_s); 0: all athletes send at once")
    seed: int = 7
    fatigue_tau_s: float = Field(180.0, gt=0, description="Time constant of fatigue build-up (demo: minutes)")
    session_id: str = "demo-session"
    replay: list[Path] = Field(default_factory=list, description="Recorded IMU files to replay as athletes")
    partitions: int = Field(6, ge=1, description="Partitions of topics the simulator has to create")
    metrics_port: int = Field(0, ge=0, description="Serve Prometheus metrics on this port (0: off)")
    athlete_prefix: str = Field("ath", description="Athlete ids are <prefix>-01, <prefix>-02, ...")


class ImagingSettings(ServiceSettings):
    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="Model whose image encoder the embeddings must match")
    encoder_checkpoint: Path | None = Field(None, description="ResNet50 weights (default: the model's, else seeded init)")
    study_policy: str = Field("latest", description="latest | body_part: which study an athlete is scored with")
    prefer_body_parts: list[str] = Field(default_factory=list, description="Body parts preferred by body_part")
    uid_key_file: Path | None = Field(None, description="Site secret keying the SOP Instance UID hashes")
    allowed_roots: list[Path] = Field(default_factory=list, description="Folders ingest requests may read from")
    app_id: str = Field("injury-monitor-imaging", description="Consumer group of the ingest listener")


class DemoSettings(ServiceSettings):
    athletes: int = 12
    duration_s: float | None = None
    dashboard: bool = True
    workers: int = Field(1, ge=1)
    kafka_port: int = 0
    redis_port: int = 0
    dashboard_port: int = 8501
    external_kafka: bool = False
    external_redis: bool = False
