"""Kafka client options from settings (plaintext, TLS, SASL PLAIN/SCRAM) for aiokafka, Faust and librdkafka."""

from __future__ import annotations

import ssl

from stream.settings import ServiceSettings


def ssl_context(settings: ServiceSettings) -> ssl.SSLContext | None:
    if "SSL" not in settings.kafka_security_protocol.upper():
        return None
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    return ssl.create_default_context(cafile=cafile)


def client_kwargs(settings: ServiceSettings) -> dict:
    """Keyword arguments for aiokafka clients (producer, consumer, admin)."""
    kw: dict = {"bootstrap_servers": settings.bootstrap_servers,
                "security_protocol": settings.kafka_security_protocol.upper()}
    ctx = ssl_context(settings)
    if ctx is not None:
        kw["ssl_context"] = ctx
    if settings.kafka_sasl_mechanism:
        kw["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kw["sasl_plain_username"] = settings.kafka_sasl_username
        kw["sasl_plain_password"] = (settings.kafka_sasl_password.get_secret_value()
                                     if settings.kafka_sasl_password else None)
    return kw


def faust_credentials(settings: ServiceSettings):
    """``broker_credentials`` for faust.App, or None for plaintext."""
    import faust

    ctx = ssl_context(settings)
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        return faust.SASLCredentials(username=settings.kafka_sasl_username or "", password=password,
                                     mechanism=settings.kafka_sasl_mechanism, ssl_context=ctx)
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None


def librdkafka_config(settings: ServiceSettings) -> dict:
    """The same connection as :func:`client_kwargs`, in librdkafka's (confluent-kafka's) terms."""
    conf: dict = {"bootstrap.servers": settings.bootstrap_servers,
                  "security.protocol": settings.kafka_security_protocol.upper()}
    if "SSL" in conf["security.protocol"]:  # the system's CAs unless a file is given, as ssl_context()
        conf["ssl.ca.location"] = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else "probe"
    if settings.kafka_sasl_mechanism:
        conf["sasl.mechanism"] = settings.kafka_sasl_mechanism
        conf["sasl.username"] = settings.kafka_sasl_username or ""
        conf["sasl.password"] = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    return conf
