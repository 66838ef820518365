"""The floor of the stream benchmark: a plain aiokafka consumer that only decodes the frames.

It joins a consumer group (``app_id``), reads ``biomech.frames`` from the earliest offset
in large ``getmany`` batches and validates every message with
:func:`schemas.codec.decode_frame_batch`, exactly as the worker does, then throws it away.
No windowing, no scoring, no writes: whatever a stream processor does on top costs at
least this much, so every other implementation is reported as a ratio to it.

Run as ``python -m stream.bench.floor`` with the worker's ``INJURY_MONITOR_*`` settings
(``KAFKA_URL``, ``APP_ID`` = group, ``WEB_PORT`` = Prometheus port, ``HZ``); it serves
``injury_messages_total`` and ``injury_frames_total`` like the worker, until SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from prometheus_client import start_http_server

from schemas import topics
from schemas.codec import decode_frame_batch
from schemas.exceptions import ValidationFailed
from stream.kafka import client_kwargs
from stream.metrics import WorkerMetrics
from stream.settings import WorkerSettings

log = logging.getLogger(__name__)


async def consume(settings: WorkerSettings, metrics: WorkerMetrics, stop: asyncio.Event) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topics.FRAMES, **client_kwargs(settings), group_id=settings.app_id, auto_offset_reset="earliest",
        enable_auto_commit=True, session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=1000, max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    hz = settings.hz
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            n = frames = 0
            for records in batches.values():
                for rec in records:
                    n += 1
                    try:
                        frames += len(decode_frame_batch(rec.value or b"", rec.key, expected_hz=hz).frames)
                    except ValidationFailed as exc:
                        metrics.rejected.labels(str(exc.reason)).inc()
            if n:
                metrics.messages.inc(n)
                metrics.frames.inc(frames)
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> int:
    settings = WorkerSettings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics = WorkerMetrics()
    start_http_server(settings.web_port, addr=settings.web_bind, registry=metrics.registry)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await consume(settings, metrics, stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
