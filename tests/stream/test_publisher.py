"""ScorePublisher (librdkafka) against a real broker; its connection settings from the worker's."""

from __future__ import annotations

from pydantic import SecretStr

from stream.kafka import librdkafka_config
from stream.publisher import ScorePublisher
from stream.settings import WorkerSettings
from tests.stream.kafka_tools import read_topic


def test_librdkafka_config_mirrors_the_aiokafka_connection(tmp_path):
    plain = librdkafka_config(WorkerSettings(kafka_url="kafka://h1:9092,h2:9092"))
    assert plain == {"bootstrap.servers": "h1:9092,h2:9092", "security.protocol": "PLAINTEXT"}
    ca = tmp_path / "ca.pem"
    sasl = librdkafka_config(WorkerSettings(kafka_url="kafka://h:9093", kafka_security_protocol="sasl_ssl",
                                            kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="svc",
                                            kafka_sasl_password=SecretStr("s3cret"), kafka_ssl_cafile=ca))
    assert sasl == {"bootstrap.servers": "h:9093", "security.protocol": "SASL_SSL", "ssl.ca.location": str(ca),
                    "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "svc", "sasl.password": "s3cret"}
    tls = librdkafka_config(WorkerSettings(kafka_url="kafka://h:9093", kafka_security_protocol="SSL"))
    assert tls["ssl.ca.location"] == "probe"  # the system's CAs, as the aiokafka clients use


def test_every_record_is_delivered_in_order_per_key_and_flush_waits_for_them(kafka_bootstrap):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic("t.scores", 3, 1)])["t.scores"].result(15)
    errors = []
    pub = ScorePublisher({"bootstrap.servers": kafka_bootstrap}, on_error=lambda: errors.append(1))
    sent = [(f"ath-{i % 7}".encode(), f"{i}".encode()) for i in range(500)]
    for key, value in sent:
        pub.send("t.scores", key, value)
    pub.poll()
    assert pub.flush(15) == 0 and pub.errors == 0 and errors == []
    got = read_topic(kafka_bootstrap, "t.scores")
    assert sorted(got) == sorted(sent)
    for k in {k for k, _ in sent}:  # per athlete, the order they were sent in
        assert [v for kk, v in got if kk == k] == [v for kk, v in sent if kk == k]
