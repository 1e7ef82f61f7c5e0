"""Argument types and options shared by several sub-commands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from fusewatch.config import FusewatchConfig, load_config
from fusewatch.core.errors import ConfigError, FusewatchError
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.secrets import read_secret, warn_command_line

WEBHOOK_SECRET_ENV = "FUSEWATCH_WEBHOOK_SECRET"  # the signing secret of --webhook targets

if TYPE_CHECKING:
    from connectors.sinks.influx.settings import InfluxSettings
    from connectors.sinks.influx.writers import InfluxSink
    from connectors.webhooks.delivery import Endpoint
    from fusewatch.core.assets import AssetRegistry


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


def plant_speed(text: str) -> float | None:
    """``max`` (``None``: as fast as possible) or a positive factor of plant time, e.g. ``10`` or ``10x``."""
    if text == "max":
        return None
    try:
        return positive_float(text.removesuffix("x"))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError("must be a positive number (times plant speed) or 'max'") from None


def event_time(text: str) -> int:
    """An RFC 3339 time with an offset (e.g. 2026-11-30T14:00:00Z), as nanoseconds since the epoch."""
    from fusewatch.core.timeutil import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (e.g. 2026-11-30T14:00:00Z)") from None


def add_time_range_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--from T1`` and ``--to T2`` (exclusive), RFC 3339, both optional: ``what`` says what they select."""
    parser.add_argument("--from", dest="start", type=event_time, default=None, metavar="T1",
                        help=f"start of {what}, RFC 3339 (default: from the oldest message)")
    parser.add_argument("--to", dest="end", type=event_time, default=None, metavar="T2",
                        help=f"end of {what}, exclusive, RFC 3339 (default: up to the newest message)")


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


def scoring_config_of(args: argparse.Namespace) -> FusewatchConfig:
    """:func:`config_of` for a command that scores: a ``[models] bundle`` that is missing or damaged stops it here,
    with one error naming the file, before any service is contacted or worker started."""
    config = config_of(args)
    if config.models.bundle is not None:
        from models.bundle import load_bundle  # numpy and safetensors only for the commands that score

        load_bundle(config.models.bundle)
    return config


def kafka_settings(args: argparse.Namespace, config: FusewatchConfig) -> KafkaSettings:
    """The configuration's Kafka settings, with ``--kafka`` over them."""
    if args.kafka is None:
        return config.kafka
    try:
        return KafkaSettings(**{**config.kafka.model_dump(), "bootstrap_servers": args.kafka})
    except ValidationError as exc:
        message = str(exc.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"--kafka: {message}") from None


def add_influx_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--influx URL``, the database/bucket and organisation, and the credentials (files or, discouraged, values)."""
    group = parser.add_argument_group(
        "InfluxDB", "Over the [influx] section of the configuration. Give secrets as FUSEWATCH_INFLUX__PASSWORD or"
        " FUSEWATCH_INFLUX__TOKEN, or as files: a value on the command line is visible to every user of the host.")
    group.add_argument("--influx", metavar="URL", default=None,
                       help=f"{what} to the InfluxDB at URL (v1 or v2 API, detected from /ping; default: influx.url)")
    group.add_argument("--influx-db", metavar="NAME", default=None,
                       help="database (v1, created if missing) or bucket (v2) (default: influx.database, fusewatch)")
    group.add_argument("--influx-org", default=None, help="v2 organisation (InfluxDB 2.x/3.x)")
    group.add_argument("--influx-user", default=None, help="v1 user (a server with auth-enabled)")
    group.add_argument("--influx-password-file", type=Path, default=None, metavar="FILE",
                       help="file holding the v1 password of --influx-user")
    group.add_argument("--influx-token-file", type=Path, default=None, metavar="FILE",
                       help="file holding the v2 API token")
    group.add_argument("--influx-password", default=None, help="v1 password (discouraged: see above)")
    group.add_argument("--influx-token", default=None, help="v2 API token (discouraged: see above)")


def influx_settings(args: argparse.Namespace, config: FusewatchConfig) -> InfluxSettings:
    """The configuration's ``[influx]`` with the ``--influx*`` flags over it (a secret flag logs a warning)."""
    from connectors.sinks.influx.settings import InfluxSettings

    changes: dict[str, object] = {}
    for flag, key in (("influx", "url"), ("influx_db", "database"), ("influx_org", "org"),
                      ("influx_user", "username")):
        if getattr(args, flag) is not None:
            changes[key] = getattr(args, flag)
    for secret in ("password", "token"):
        value, file = getattr(args, f"influx_{secret}"), getattr(args, f"influx_{secret}_file")
        if value is not None:
            warn_command_line(f"--influx-{secret}", f"FUSEWATCH_INFLUX__{secret.upper()}", f"--influx-{secret}-file")
        if value is not None or file is not None:  # a flag replaces both forms of the configuration's secret
            changes.update({secret: value, f"{secret}_file": file})
    try:
        return InfluxSettings(**{**config.influx.model_dump(), **changes})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ConfigError(f"--influx options: {str(first['msg']).removeprefix('Value error, ')}") from None


def open_influx(args: argparse.Namespace, config: FusewatchConfig) -> InfluxSink | None:
    """The sink ``--influx`` or ``influx.url`` names (``None`` without either); the server must answer now."""
    settings = influx_settings(args, config)
    if not settings.url:
        return None
    from connectors.sinks.influx.writers import open_sink

    username, password, token = settings.credentials()
    return open_sink(settings.url, settings.database, token, settings.org, username, password)


def add_webhook_options(parser: argparse.ArgumentParser) -> None:
    """``--webhook URL`` (repeatable), its secret (``--webhook-secret-file`` or the environment), private targets."""
    parser.add_argument("--webhook", metavar="URL", action="append", default=[],
                        help="deliver every alert transition to URL, signed (Standard Webhooks); repeatable; adds to"
                        f" the [[webhooks]] of the configuration; its secret from ${WEBHOOK_SECRET_ENV} or"
                        " --webhook-secret-file")
    parser.add_argument("--webhook-secret-file", type=Path, default=None, metavar="FILE",
                        help="file holding the signing secret of --webhook (whsec_<base64>)")
    parser.add_argument("--webhook-secret", default=None,
                        help="the signing secret of --webhook (discouraged: visible to every user of the host)")
    parser.add_argument("--allow-private-webhooks", action="store_true",
                        help="allow --webhook targets on loopback or private networks (e.g. a receiver on this host)")


def webhook_endpoints(args: argparse.Namespace, config: FusewatchConfig) -> list[Endpoint]:
    """The configuration's ``[[webhooks]]`` and the ``--webhook`` targets."""
    endpoints = [hook.endpoint() for hook in config.webhooks]
    if args.webhook:
        if args.webhook_secret is not None:
            warn_command_line("--webhook-secret", WEBHOOK_SECRET_ENV, "--webhook-secret-file")
        text = args.webhook_secret
        if text is None and args.webhook_secret_file is not None:
            text = read_secret(None, args.webhook_secret_file, "--webhook-secret")
        text = text if text is not None else os.environ.get(WEBHOOK_SECRET_ENV)
        if not text:
            raise FusewatchError(f"--webhook needs its signing secret (whsec_<base64>): ${WEBHOOK_SECRET_ENV} or"
                                 " --webhook-secret-file FILE")
        from connectors.webhooks.delivery import Endpoint
        from connectors.webhooks.signing import WebhookSecret

        try:
            secret = WebhookSecret.parse(text)
        except ValueError as exc:
            raise FusewatchError(f"webhook secret: {exc}") from None
        endpoints += [Endpoint(url, secret, allow_private=args.allow_private_webhooks) for url in args.webhook]
    return endpoints


def add_assets_options(parser: argparse.ArgumentParser) -> None:
    """``--plant FILE`` (the plant file) or ``--assets-file FILE`` (the older registry JSON, or a plant file)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--plant", type=Path, default=None, metavar="FILE",
                       help="the plant file (docs/connect-a-plant.md): its assets and their bearing frequencies;"
                       " messages of other assets become dead letters ('unknown asset')")
    group.add_argument("--assets-file", type=Path, default=None, metavar="FILE",
                       help="an asset registry JSON as `fusewatch simulate --assets-file` writes (or a plant file)")


def asset_registry(args: argparse.Namespace) -> AssetRegistry | None:
    """The registry of ``--plant`` or ``--assets-file``; ``None`` (every asset, no bearings) when neither is given."""
    from fusewatch.core.plant import load_registry

    path = args.plant if args.plant is not None else args.assets_file
    return None if path is None else load_registry(path)
