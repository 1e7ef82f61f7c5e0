"""The one way fusewatch opens a kafka-python client: security from ``[kafka]``, bootstrap bounded by
``[kafka] timeout_s``, and the real cause when the brokers refuse.

kafka-python reports a wrong password, an untrusted certificate or a plaintext client on a TLS listener only as
``KafkaTimeoutError: Unable to bootstrap`` after its bootstrap timeout, with the cause in its log. So before a
client is built, :func:`probe_broker` opens a TCP connection and, with TLS, completes the handshake itself
(certificate and hostname errors are reported at once); while the client bootstraps, its log is captured and
the cause is put into the error (:class:`~fusewatch.core.errors.AccessDeniedError`, naming the setting to check).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from aiokafka.conn import create_conn
from aiokafka.protocol.admin import ApiVersionRequest
from kafka.errors import KafkaError

from fusewatch.core.errors import AccessDeniedError, ServiceUnavailableError
from fusewatch.core.kafka_settings import KafkaSettings

log = logging.getLogger(__name__)

Client = TypeVar("Client")

PROBE_ALERT_WAIT_S = 0.3  # how long the probe waits for a TLS alert after the handshake

_AUTH_WORDS = ("authenticat", "sasl", "scram", "password", "credential")
_TLS_WORDS = ("ssl", "tls", "certificate", "handshake")


class _RedactSecrets(logging.Filter):
    """kafka-python's admin client logs its whole configuration at DEBUG, the SASL password with it: shown as
    ``***`` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):  # one mapping argument is kept as the args themselves
            record.args = cast(dict[str, object], _redacted(record.args))
        elif isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        return True


def _redacted(value: object) -> object:
    if isinstance(value, dict):
        return {k: ("***" if "password" in str(k) and v else _redacted(v)) for k, v in value.items()}
    return value


logging.getLogger("kafka.admin.client").addFilter(_RedactSecrets())


def producer_options(settings: KafkaSettings) -> dict[str, Any]:
    """What every fusewatch producer sets: idempotent with ``acks=all`` (no loss or duplicate when a leader fails,
    with ``min.insync.replicas`` 2 on the cluster), a reconnect backoff capped at 1 s (kafka-python's default
    grows to 30 s, which stalls a failover for seconds after the new leader is there), no topic created by a send.
    """
    return {
        "acks": "all",
        "enable_idempotence": True,
        "reconnect_backoff_max_ms": 1000,
        "max_request_size": settings.max_message_bytes,
        "request_timeout_ms": settings.timeout_ms,
        "max_block_ms": settings.timeout_ms,
        "allow_auto_create_topics": False,
    }


def unavailable(settings: KafkaSettings, exc: BaseException) -> ServiceUnavailableError:
    """The error for a broker that did not answer."""
    return ServiceUnavailableError(
        f"no Kafka broker answered at {settings.bootstrap_servers} within {settings.timeout_s:g} s ({exc}); is it"
        " running? (`make services-up` starts one on 127.0.0.1:9092)"
    )


def probe_broker(settings: KafkaSettings) -> None:
    """Wait until one bootstrap server accepts a connection (and, with TLS, completes a handshake fusewatch trusts).

    :class:`ServiceUnavailableError` after ``timeout_s``; :class:`AccessDeniedError` at once for a certificate
    that is not trusted or does not name the host. Clients are created only once a broker answers: kafka-python
    leaves sockets open when its own bootstrap fails.
    """
    deadline = time.monotonic() + settings.timeout_s
    context = settings.ssl_context()
    last: OSError | None = None
    while True:
        for server in settings.servers():
            host, _, port = server.rpartition(":")
            host = host.strip("[]")
            try:
                with socket.create_connection((host, int(port)), timeout=min(settings.timeout_s, 2.0)) as raw:
                    if context is not None:
                        _handshake(context, raw, host, server, settings)
                _session(host, int(port), server, settings)
                return
            except AccessDeniedError:
                raise
            except OSError as exc:
                last = exc
        if time.monotonic() >= deadline:
            raise unavailable(settings, last or OSError("no server"))
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def _handshake(context: ssl.SSLContext, raw: socket.socket, host: str, server: str, settings: KafkaSettings) -> None:
    try:
        with context.wrap_socket(raw, server_hostname=host if context.check_hostname else None) as tls:
            # TLS 1.3: a listener that requires a client certificate rejects it (or its absence) only after the
            # handshake, with an alert the next read sees; a listener that accepts waits for a request
            tls.settimeout(PROBE_ALERT_WAIT_S)
            with contextlib.suppress(TimeoutError, ssl.SSLWantReadError):
                tls.recv(1)
            return
    except ssl.SSLCertVerificationError as exc:
        trust = f"kafka.ssl_cafile = {settings.ssl_cafile}" if settings.ssl_cafile else "the system's CA bundle"
        raise AccessDeniedError(
            f"Kafka at {server}: the broker's TLS certificate is not trusted ({exc.verify_message}); check"
            f" {trust}" + (" and kafka.ssl_check_hostname" if "mismatch" in str(exc.verify_message) else "")
        ) from None
    except ssl.SSLError as exc:
        if "certificate" in str(exc.reason or "").lower():
            raise AccessDeniedError(
                f"Kafka at {server} refused the TLS client certificate ({exc.reason}): the listener wants mutual TLS"
                " with a certificate its CA signed (check kafka.ssl_certfile and kafka.ssl_keyfile)") from None
        raise AccessDeniedError(
            f"Kafka at {server}: TLS handshake failed ({exc.reason or exc}); does this listener speak TLS?"
            f" (kafka.security_protocol = {settings.security_protocol})"
        ) from None


def _session(host: str, port: int, server: str, settings: KafkaSettings) -> None:
    """Open one Kafka session as the clients will (TLS, SASL) and send ``ApiVersions``: a wrong password or a
    plaintext client on a secured listener is an :class:`AccessDeniedError` in well under a second, with the
    broker's reason. (kafka-python only times out, and logs the reason only some of the time.)"""
    failure: list[BaseException] = []

    async def attempt() -> None:
        connection = await create_conn(host, port, client_id=f"{settings.client_id}-probe",
                                       request_timeout_ms=settings.timeout_ms, **settings.client_options())
        writer = connection._writer  # aiokafka's StreamWriter: closing it starts a TLS shutdown nobody waits for
        try:
            await connection.send(ApiVersionRequest())
        finally:
            connection.close()
            writer.transport.abort()  # a probe needs no orderly TLS goodbye: close the socket before the loop ends
            await asyncio.sleep(0)

    def run() -> None:
        try:
            asyncio.run(asyncio.wait_for(attempt(), settings.timeout_s))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="fusewatch-kafka-probe", daemon=True)  # callers may be in a loop
    thread.start()
    thread.join(settings.timeout_s + 1.0)
    if not failure:
        return
    exc = failure[0]
    reason = str(exc) or type(exc).__name__
    if settings.sasl and type(exc).__name__.startswith("Sasl"):
        raise AccessDeniedError(
            f"Kafka at {server} refused {settings.principal}: {reason} (check kafka.sasl_username, kafka.sasl_password"
            " and kafka.sasl_mechanism)")
    if "closed" in reason.lower() and not settings.tls:
        raise AccessDeniedError(
            f"Kafka at {server} closed the connection of this {settings.security_protocol} client: the listener"
            " wants TLS (check kafka.security_protocol and the port)")
    if "closed" in reason.lower() and not settings.sasl:
        raise AccessDeniedError(
            f"Kafka at {server} closed the connection of this {settings.security_protocol} client: the listener"
            " wants SASL (check kafka.security_protocol and the port)")
    raise OSError(f"{type(exc).__name__}: {reason}")  # not an answer: the caller waits and tries again


class _Capture(logging.Handler):
    """Collects what kafka-python logs at WARNING and above while a client bootstraps."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a record that cannot be formatted is no cause
            self.messages.append(record.getMessage())


@contextmanager
def _captured_kafka_log() -> Iterator[_Capture]:
    logger = logging.getLogger("kafka")
    capture = _Capture()
    level, propagate = logger.level, logger.propagate
    if logger.getEffectiveLevel() > logging.WARNING:  # silenced by the CLI: capture without showing
        logger.setLevel(logging.WARNING)
        logger.propagate = False
    logger.addHandler(capture)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)
        logger.propagate = propagate


def refused(settings: KafkaSettings, messages: list[str]) -> AccessDeniedError | None:
    """The error for what kafka-python logged while it could not bootstrap; ``None`` when nothing says why.

    >>> settings = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_username="fw", sasl_password="x")
    >>> error = refused(settings, ["<KafkaConnection ...>: Connection lost: KafkaConnectionError: socket disconnected",
    ...                            "<KafkaSSLTransport ...>: Abort ([Error 58] SaslAuthenticationFailedError:"
    ...                            " SaslAuthenticationFailedError: Authentication failed during authentication due to"
    ...                            " invalid credentials with SASL mechanism SCRAM-SHA-512)"])
    >>> print(str(error).replace(" (check", "\\n(check"))
    Kafka at 127.0.0.1:9092 refused User:fw: Authentication failed during authentication due to invalid credentials...
    (check kafka.sasl_username, kafka.sasl_password and kafka.sasl_mechanism)
    """

    def detail(message: str) -> str:
        text = message.rpartition("Error: ")[2] if "Error: " in message else message.rpartition(">: ")[2]
        return re.sub(r"\s*\(backoff [\d.]+ secs\)?", "", text).removesuffix(")")

    found = {kind: [m for m in messages if any(word in m.lower() for word in words)]
             for kind, words in (("auth", _AUTH_WORDS), ("tls", _TLS_WORDS))}
    if found["auth"]:
        return AccessDeniedError(
            f"Kafka at {settings.bootstrap_servers} refused {settings.principal}: {detail(found['auth'][-1])} (check"
            " kafka.sasl_username, kafka.sasl_password and kafka.sasl_mechanism)")
    if found["tls"]:
        return AccessDeniedError(f"Kafka at {settings.bootstrap_servers}: {detail(found['tls'][-1])} (check"
                                 " kafka.security_protocol and the kafka.ssl_* settings)")
    if any("disconnected" in message or "closed" in message for message in messages):
        return AccessDeniedError(
            f"Kafka at {settings.bootstrap_servers} accepted connections but closed each one this"
            f" {settings.security_protocol} client opened: the listener probably wants TLS or SASL (check"
            " kafka.security_protocol and the port)")
    return None


def open_client(factory: Callable[..., Client], settings: KafkaSettings, role: str, **options: Any) -> Client:
    """``factory(**options)`` (a kafka-python client class) with the brokers, the security settings, the client id
    ``<client_id>-<role>`` and a bootstrap bounded by ``timeout_s``; clear errors when it cannot connect."""
    probe_broker(settings)
    options.setdefault("bootstrap_timeout_ms", settings.timeout_ms)
    with _captured_kafka_log() as capture:
        try:
            return factory(bootstrap_servers=settings.servers(), client_id=f"{settings.client_id}-{role}",
                           **settings.client_options(), **options)
        except KafkaError as exc:
            denied = refused(settings, capture.messages)
            if denied is not None:
                raise denied from None
            raise unavailable(settings, exc) from None
