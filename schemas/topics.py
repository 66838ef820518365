"""The channel list of the system: every Kafka topic, its key and its value contract."""

from __future__ import annotations

FRAMES = "biomech.frames"          # key: athlete_id (utf-8), value: FrameBatch (JSON)
FRAMES_DLQ = "biomech.frames.dlq"  # key: original key, value: Rejected (JSON)
RISK = "injury.risk"               # key: athlete_id, value: RiskScore (JSON)
ALERTS = "injury.alerts"           # key: athlete_id, value: Alert (JSON)
IMAGING = "imaging.studies"        # key: athlete_id, value: StudyEvent (JSON, issue: imaging)

ALL = (FRAMES, FRAMES_DLQ, RISK, ALERTS, IMAGING)
