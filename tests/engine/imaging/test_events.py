from __future__ import annotations

import orjson
import pytest

from engine.imaging.events import IngestRequest, StudyEvent, build_study_event, decode_message, encode_message, kafka_record
from schemas.exceptions import ValidationFailed


def test_study_event_round_trip_and_record(make_meta):
    event = build_study_event("ath-7", make_meta(), primary=True)
    assert event.redis_key == "emb:resnet50-rand0-p0:ath-7"
    topic, key, value = kafka_record(event)
    assert topic == "imaging.studies" and key == b"ath-7"
    assert decode_message(value) == event
    doc = orjson.loads(value)
    assert doc["kind"] == "study.embedded" and doc["study_date"] == "2024-01-15"


def test_ingest_request_shares_the_topic():
    req = IngestRequest(athlete_id="ath-7", paths=["/data/in/study1"], request_id="r1")
    back = decode_message(encode_message(req))
    assert isinstance(back, IngestRequest) and back.paths == ["/data/in/study1"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"not json", "not_json"), (b'{"kind": "study.embedded"}', "schema_invalid"), (b'{"kind": "other"}', "schema_invalid"),
     (b"[1, 2]", "schema_invalid")],
)
def test_bad_messages_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(ValidationFailed) as info:
        decode_message(raw)
    assert info.value.reason == reason


def test_events_cannot_carry_extra_fields_or_bad_ids(make_meta):
    doc = orjson.loads(encode_message(build_study_event("ath-7", make_meta(), primary=False)))
    with pytest.raises(ValidationFailed):
        decode_message(orjson.dumps({**doc, "patient_name": "Doe^Jane"}))
    with pytest.raises(ValueError):
        StudyEvent(**{**doc, "athlete_id": "Doe Jane"})
    with pytest.raises(ValueError):
        IngestRequest(athlete_id="a", paths=[])
