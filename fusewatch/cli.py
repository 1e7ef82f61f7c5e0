"""The ``fusewatch`` command line: the parser and the dispatch; each command lives in ``fusewatch.commands``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from fusewatch import __version__
from fusewatch.core.errors import FusewatchError

# One stream per core: numeric libraries must not start spinning thread pools that fight the simulator and
# the other workers for the cores. Set before numpy, scipy or torch are imported; the environment can override.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

DESCRIPTION = """\
fusewatch: streaming predictive maintenance that fuses vibration, camera frames and maintenance logs.

Run `fusewatch COMMAND --help` for a command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    from fusewatch.commands import (
        alerts,
        backtest,
        bundle,
        config,
        demo,
        evaluate,
        grafana,
        import_files,
        ingest,
        plant,
        record,
        replay,
        scores,
        simulate,
        sink,
        sweep,
        topics,
        train,
        worker,
    )

    parser = argparse.ArgumentParser(
        prog="fusewatch", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"fusewatch {__version__}")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for command in (demo, plant, ingest, import_files, topics, simulate, worker, record, replay, sink, scores, alerts,
                    evaluate, sweep, backtest, train, bundle, config, grafana):
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fusewatch`` console script."""
    args = build_parser().parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so worker processes are stopped and sinks flushed on the way out
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if logging.getLogger().level >= logging.WARNING:
        # kafka-python logs every refused connection; fusewatch reports what matters as one clear error
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        status: int = args.run(args)
        return status
    except FusewatchError as exc:
        print(f"fusewatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
