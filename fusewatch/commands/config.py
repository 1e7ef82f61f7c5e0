"""``fusewatch config``: print the effective configuration."""

from __future__ import annotations

import argparse
from typing import Any

from fusewatch.commands.common import add_config_option, config_of


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "config",
        help="print the effective configuration as TOML",
        description="Print the configuration fusewatch would run with: defaults, overridden by --config FILE,"
        " overridden by FUSEWATCH_* environment variables. The output is itself a valid configuration file.",
    )
    add_config_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fusewatch.config import to_toml

    print(to_toml(config_of(args)), end="")
    return 0
