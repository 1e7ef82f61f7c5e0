"""Kafka settings: the ``[kafka]`` section of the configuration file.

>>> settings = KafkaSettings()
>>> settings.bootstrap_servers, settings.partitions
('127.0.0.1:9092', 6)
>>> settings.topics().frames
'fusewatch.frames'
>>> KafkaSettings(bootstrap_servers="kafka-1:9092, kafka-2:9092").servers()
['kafka-1:9092', 'kafka-2:9092']
>>> KafkaSettings(bootstrap_servers="kafka-1")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for KafkaSettings
...

A secured cluster (docs/production.md): TLS, SASL/SCRAM, the password from the environment
(``FUSEWATCH_KAFKA__SASL_PASSWORD``) or a file, never printed:

>>> secured = KafkaSettings(security_protocol="SASL_SSL", sasl_username="fusewatch", sasl_password="pw")
>>> secured
KafkaSettings(bootstrap_servers='127.0.0.1:9092', ..., sasl_password=SecretStr('**********'), ...)
>>> options = secured.client_options()
>>> options["security_protocol"], options["sasl_mechanism"], options["sasl_plain_username"]
('SASL_SSL', 'SCRAM-SHA-512', 'fusewatch')
>>> KafkaSettings().client_options()
{'security_protocol': 'PLAINTEXT'}
>>> KafkaSettings(security_protocol="SASL_SSL")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for KafkaSettings
  Value error, SASL_SSL needs sasl_username and a password (sasl_password or sasl_password_file) ...
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from fusewatch.core.secrets import check_secret_pair, read_secret
from fusewatch.core.topics import Topics

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_SERVER = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")
_PREFIX = re.compile(r"^[A-Za-z0-9._\-]*$")


class KafkaSettings(BaseModel):
    """Where the broker is and how fusewatch's topics are laid out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="HOST:PORT[,HOST:PORT...] of the brokers")
    topic_prefix: str = Field("fusewatch.", description="prefix of every topic name")
    partitions: int = Field(6, ge=1, le=10_000, description="partitions of every topic (inputs co-partitioned)")
    replication_factor: int = Field(1, ge=1, le=32, description="replicas of every topic fusewatch creates")
    client_id: str = Field("fusewatch", min_length=1, description="client id the broker sees in its logs")
    timeout_s: float = Field(10.0, gt=0, le=600, description="give up on an unresponsive broker after this long")
    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest message (camera frames)")
    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (TLS + SASL)")
    sasl_mechanism: SaslMechanism = Field("SCRAM-SHA-512", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    sasl_username: str = Field("", description="SASL user (the principal User:NAME the ACLs name)")
    sasl_password: SecretStr | None = Field(None, description="SASL password: use FUSEWATCH_KAFKA__SASL_PASSWORD")
    sasl_password_file: Path | None = Field(None, description="file holding the SASL password")
    ssl_cafile: Path | None = Field(None, description="PEM CA bundle the brokers' certificates are checked against"
                                    " (default: the system's)")
    ssl_certfile: Path | None = Field(None, description="PEM client certificate (mutual TLS)")
    ssl_keyfile: Path | None = Field(None, description="PEM private key of ssl_certfile")
    ssl_key_password: SecretStr | None = Field(None, description="password of an encrypted ssl_keyfile")
    ssl_key_password_file: Path | None = Field(None, description="file holding ssl_key_password")
    ssl_check_hostname: bool = Field(True, description="check the broker's certificate names the host dialled")

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_servers(cls, value: str) -> str:
        servers = [part.strip() for part in value.split(",") if part.strip()]
        if not servers:
            raise ValueError("no broker given")
        for server in servers:
            if not _SERVER.match(server):
                raise ValueError(f"{server!r} is not HOST:PORT")
        return ",".join(servers)

    @field_validator("topic_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError("may contain only letters, digits, '.', '_' and '-' (Kafka's topic-name characters)")
        return value

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        check_secret_pair(self.sasl_password, self.sasl_password_file, "kafka.sasl_password")
        check_secret_pair(self.ssl_key_password, self.ssl_key_password_file, "kafka.ssl_key_password")
        if self.sasl and not (self.sasl_username and (self.sasl_password or self.sasl_password_file)):
            raise ValueError(f"{self.security_protocol} needs sasl_username and a password (sasl_password or"
                             " sasl_password_file)")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (mutual TLS)")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        return self

    @property
    def tls(self) -> bool:
        """Whether the connections use TLS."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        """Whether the connections authenticate with SASL."""
        return self.security_protocol.startswith("SASL_")

    @property
    def principal(self) -> str:
        """The principal the brokers see (for messages): ``User:NAME``, or how it is derived."""
        if self.sasl:
            return f"User:{self.sasl_username}"
        if self.ssl_certfile is not None:
            return f"the subject of {self.ssl_certfile}"
        return "User:ANONYMOUS"

    def password(self) -> str | None:
        """The SASL password (read from ``sasl_password_file`` at each call, so a rotated file is used)."""
        return read_secret(self.sasl_password, self.sasl_password_file, "kafka.sasl_password")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every client (``None`` without TLS): the CA, the client certificate, hostname check."""
        if not self.tls:
            return None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile is not None:
            key_password = read_secret(self.ssl_key_password, self.ssl_key_password_file, "kafka.ssl_key_password")
            context.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile), password=key_password)
        return context

    def client_options(self) -> dict[str, Any]:
        """The security keyword arguments of a kafka-python client (``KafkaProducer``, ``KafkaConsumer``, admin) or an
        aiokafka one (the same names)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl:
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.password())
        if self.tls:
            options.update(ssl_context=self.ssl_context())
        return options

    def servers(self) -> list[str]:
        """The bootstrap servers as a list."""
        return self.bootstrap_servers.split(",")

    def topics(self) -> Topics:
        """The topic names under this prefix."""
        return Topics(prefix=self.topic_prefix)

    @property
    def timeout_ms(self) -> int:
        return round(self.timeout_s * 1000)
