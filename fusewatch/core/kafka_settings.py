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
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fusewatch.core.topics import Topics

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

    def servers(self) -> list[str]:
        """The bootstrap servers as a list."""
        return self.bootstrap_servers.split(",")

    def topics(self) -> Topics:
        """The topic names under this prefix."""
        return Topics(prefix=self.topic_prefix)

    @property
    def timeout_ms(self) -> int:
        return round(self.timeout_s * 1000)
