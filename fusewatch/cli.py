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

Commands:
  demo      simulate a plant and score it end to end on this machine, with no services
  topics    create or describe the Kafka topics (co-partitioned inputs, scores, alerts, dead letters)
  simulate  stream a simulated plant into Kafka at plant speed, N times faster, or as fast as possible
  worker    run one stream-processing worker on Kafka (several share the partitions)
  record    write the input topics of a time range to files (a recording)
  replay    replay a recording or a Kafka time range into input topics at 1x, Nx or max speed
  sink      write the workers' scores and alerts to InfluxDB and deliver alert webhooks
  scores    follow the scores topic (`scores tail`)
  alerts    acknowledge an asset's alert, or declare a maintenance window (`alerts ack|maintenance`)
  evaluate  evaluate the models on simulated or real data (mfpt, elpv, nestor, semi-real): a row per method
  backtest  score recorded history with a candidate configuration and measure it (`backtest compare A B`)
  config    print the effective configuration (defaults, file and environment) as TOML
  grafana   export the Grafana dashboards as JSON, or push them with the data source to a running Grafana

Run `fusewatch COMMAND --help` for a command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    from fusewatch.commands import (
        alerts,
        backtest,
        config,
        demo,
        evaluate,
        grafana,
        record,
        replay,
        scores,
        simulate,
        sink,
        topics,
        worker,
    )

    parser = argparse.ArgumentParser(
        prog="fusewatch", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"fusewatch {__version__}")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (demo, topics, simulate, worker, record, replay, sink, scores, alerts, evaluate, backtest, config,
                    grafana):
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
