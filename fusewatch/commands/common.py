"""Argument types and options shared by several sub-commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError

from connectors.kafka.settings import KafkaSettings
from fusewatch.config import FusewatchConfig, load_config
from fusewatch.errors import ConfigError


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="TOML configuration file (see docs/configuration.md)")


def add_kafka_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kafka", metavar="HOST:PORT[,HOST:PORT]", default=None,
        help="Kafka bootstrap servers (default: kafka.bootstrap_servers of the configuration, 127.0.0.1:9092)",
    )


def config_of(args: argparse.Namespace) -> FusewatchConfig:
    """The configuration named by ``--config`` (or the defaults), with the environment over it."""
    return load_config(args.config)


def kafka_settings(args: argparse.Namespace, config: FusewatchConfig) -> KafkaSettings:
    """The configuration's Kafka settings, with ``--kafka`` over them."""
    if args.kafka is None:
        return config.kafka
    try:
        return KafkaSettings(**{**config.kafka.model_dump(), "bootstrap_servers": args.kafka})
    except ValidationError as exc:
        message = str(exc.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"--kafka: {message}") from None
