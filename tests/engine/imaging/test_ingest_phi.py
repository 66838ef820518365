"""No PHI attribute of the input reaches Redis, Kafka, the logs or the CLI report."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pydicom
import pytest

from engine.imaging.deid import BASIC_PROFILE_KEYWORDS, RETAINED_KEYWORDS
from engine.imaging.events import decode_message, publish
from engine.imaging.ingest import ingest_paths
from engine.imaging.store import RedisEmbeddingStore
from engine.imaging.synthetic import FakePatient, render_radiograph
from schemas.topics import IMAGING

MIN_LEN = 4  # shorter values ("M", "CT", "1") would match by chance


def _walk(ds):
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value or []:
                yield from _walk(item)


def phi_values(path: Path) -> set[str]:
    """Every identifying value of a file: profile attributes, person names, private text, at any depth."""
    ds = pydicom.dcmread(path, force=True)
    retained = {str(ds.get(k, "")) for k in RETAINED_KEYWORDS} - {""}
    out: set[str] = set()
    for elem in list(_walk(ds)) + list(_walk(ds.file_meta)):
        if elem.VR == "SQ" or elem.tag == 0x7FE00010:
            continue
        if not (elem.keyword in BASIC_PROFILE_KEYWORDS or elem.VR == "PN" or elem.tag.is_private):
            continue
        values = elem.value if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]
        for v in values:
            if v is None or isinstance(v, bytes):
                continue
            text = str(v).strip()
            if text in retained:
                continue  # Study Date is kept on purpose (full-dates option); other dates equal to it too
            if len(text) >= MIN_LEN:
                out.add(text)
            if elem.VR == "PN":
                out.update(part for part in text.split("^") if len(part) >= MIN_LEN)
            if elem.VR == "DA" and len(text) == 8 and text.isdigit():
                out.add(f"{text[:4]}-{text[4:6]}-{text[6:]}")  # a reformatted date is still a date
    return out


def leaks(phi: set[str], blob: bytes) -> list[str]:
    """PHI values found in ``blob``, as written or upper-cased (code strings are upper case)."""
    return sorted(v for v in phi if any(form.encode("utf-8", "replace") in blob for form in (v, v.upper())))


def _redis_dump(client) -> bytes:
    parts: list[bytes] = []
    for key in client.scan_iter(count=1000):
        parts.append(key)
        kind = client.type(key)
        if kind == b"hash":
            for f, v in client.hgetall(key).items():
                parts += [f, v]
        elif kind == b"string":
            parts.append(client.get(key))
        elif kind == b"list":
            parts += client.lrange(key, 0, -1)
        elif kind == b"set":
            parts += list(client.smembers(key))
        elif kind == b"zset":
            parts += client.zrange(key, 0, -1)
        elif kind == b"stream":
            for _id, fields in client.xrange(key):
                parts += [b for kv in fields.items() for b in kv]
    return b"\n".join(parts)


async def _kafka_round_trip(bootstrap: str, events) -> list[tuple[bytes, bytes]]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await publish(producer, events)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = sorted(consumer.partitions_for_topic(IMAGING) or await _partitions(consumer))
        consumer.assign([TopicPartition(IMAGING, p) for p in parts])
        got: list[tuple[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + 15
        while len(got) < len(events) and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            got += [(r.key, r.value) for records in batch.values() for r in records]
        return got
    finally:
        await consumer.stop()


async def _partitions(consumer) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(IMAGING) or set()


def test_no_phi_leaves_ingest(tmp_path, real_dicom, sync_redis, kafka_bootstrap, imaging_encoder, caplog):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "RG3_UNCI.dcm", "rtplan.dcm"):
        shutil.copy(real_dicom(name), inbox / name)
    render_radiograph(inbox / "knee_a.dcm", seed=21, size=128, patient=FakePatient.for_seed(21))
    render_radiograph(inbox / "knee_b.dcm", seed=22, size=128, patient=FakePatient.for_seed(22), modality="DX")
    cut = render_radiograph(tmp_path / "cut.dcm", seed=23, size=128, patient=FakePatient.for_seed(23))
    (inbox / "knee_cut.dcm").write_bytes(cut.read_bytes()[:20_000])

    phi: set[str] = set()
    for f in list(inbox.iterdir()) + [cut]:
        phi |= phi_values(f)
    # the oracle sees the identities we planted and the real files' ones
    for must in (FakePatient.for_seed(21).name, FakePatient.for_seed(22).patient_id, FakePatient.for_seed(23).accession,
                 "CompressedSamples^CT1", "Last^First^mid^pre", FakePatient.for_seed(21).institution):
        assert must in phi
    assert any(v.startswith("1.3.6.1.4.1.5962") for v in phi)  # raw UIDs are PHI too

    caplog.set_level(logging.DEBUG)
    report = ingest_paths([inbox], "ath-phi", store=RedisEmbeddingStore(sync_redis), encoder=imaging_encoder)
    assert len(report.studies) == 5 and {f.code for f in report.refused} == {"no_pixel_data", "truncated"}
    messages = asyncio.run(_kafka_round_trip(kafka_bootstrap, report.events))
    assert len(messages) == len(report.events) == 5
    assert all(decode_message(v).athlete_id == "ath-phi" for _, v in messages)

    stored = _redis_dump(sync_redis)
    published = b"\n".join(k + b"\n" + v for k, v in messages)
    logs = caplog.text.encode()
    printed = "\n".join(report.lines()).encode()
    assert b"emb:resnet50-rand0-p0:ath-phi" in stored and len(stored) > 10_000 and logs and printed
    assert leaks(phi, stored) == []
    assert leaks(phi, published) == []
    assert leaks(phi, logs) == []
    assert leaks(phi, printed) == []
    # and the check itself bites
    planted = FakePatient.for_seed(22).name
    assert planted in leaks(phi, stored + planted.upper().encode())


@pytest.mark.parametrize("name", ["rtplan.dcm", "RG3_UNCI.dcm"])
def test_phi_oracle_finds_identity_in_raw_files(real_dicom, name):
    phi = phi_values(real_dicom(name))
    raw = real_dicom(name).read_bytes()
    assert phi and len(leaks(phi, raw)) >= len(phi) // 2
