"""``fusewatch train``: learn a model bundle from recorded history."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from fusewatch.commands.common import (
    add_assets_options,
    add_config_option,
    add_kafka_option,
    add_time_range_options,
    asset_registry,
    config_of,
    kafka_settings,
)
from fusewatch.commands.train_fusion import add_fusion_options, learn_fusion
from fusewatch.core.errors import ConfigError

DESCRIPTION = """\
Learn a model bundle from recorded history (the three input topics over a time range, read from Kafka or from a
recording made with `fusewatch record` or `fusewatch import`), and write it as a new, versioned bundle directory
(docs/models.md, "Bundles"). Workers, the demo, the backtest and evaluate use it with `[models] bundle = "DIR"`.

What it learns:
- the fleet text model, one maintenance-log severity model over every entry a technician labelled, of every
  asset, in event-time order; with it every asset's log entries are judged by the whole fleet's experience from
  its first entry on, and the model goes on learning online;
- a camera autoencoder per asset kind, trained on a sample of the normal frames of every asset's first two days;
  a new asset's autoencoder starts from its kind's and adapts to its own scene during its warm-up;
- kind priors: the history's first two days of every asset are replayed through the models of --config (the
  cameras starting from those autoencoders), and each channel's scores of normal windows are pooled per asset
  kind (from --plant/--assets-file or the recording's registry) and age. With them a new asset can alert after
  a warm-up of --warmup-hours (2 h), not 2 days.
--no-priors leaves the last two out. A window is normal unless its asset's first symptom or failure entry
follows within [models] label_horizon_hours (or came before it).
- with --fusion-windows, a learned fusion (`[models] fusion = "learned"`), kept only where it beats Fisher on
  held-out history (below). Without --source the bundle holds the learned fusion only.

examples:
  fusewatch train --source rec/ --from 2026-01-05T00:00:00Z --to 2026-03-01T00:00:00Z \\
      --out bundles/pumps-2026.03 --version 2026.03 --description "site A, Jan-Feb"
  fusewatch train --fusion-windows out/sweep-records --assets-file assets.json \\
      --out bundles/fusion-2026.03 --version f2026.03
"""


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "train", help="learn a model bundle from recorded history",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", default=None, metavar="kafka|DIR",
                        help="`kafka` (the input topics of [kafka]) or a recording directory (needed unless"
                        " --fusion-windows is given)")
    add_time_range_options(parser, "history trained on")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="the new bundle's directory (must not exist: a bundle is never overwritten)")
    parser.add_argument("--version", required=True,
                        help="the bundle's version, named in every score made with it (letters, digits, . _ -)")
    parser.add_argument("--description", default="", help="what the bundle is for, kept in its manifest")
    parser.add_argument("--warmup-hours", type=float, default=2.0, metavar="H",
                        help="a new asset's warm-up with the bundle's kind priors, in hours (default: 2)")
    parser.add_argument("--no-priors", action="store_true",
                        help="train the text model only (no camera models or kind priors, no replay)")
    add_assets_options(parser)
    add_kafka_option(parser)
    add_config_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="do not draw progress bars")
    add_fusion_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from connectors.kafka.history import open_history
    from fusewatch.core.timeutil import format_time
    from fusewatch.training import read_history, train_bundle, train_camera_models, train_priors
    from models.bundle import write_bundle
    from streams.stages.camera import CAMERA_MODELS_FILE

    if args.start is not None and args.end is not None and args.end <= args.start:
        raise ConfigError("--to must be after --from")
    if not 0 < args.warmup_hours < 48:
        raise ConfigError(f"--warmup-hours {args.warmup_hours:g}: must be between 0 and 48")
    if args.out.exists():
        raise ConfigError(f"--out {args.out}: exists already; a bundle is never overwritten, name a new directory")
    if args.source is None and not args.fusion_windows:
        raise ConfigError("give --source (history to learn the models from), --fusion-windows, or both")
    config = config_of(args)
    fusion: dict[str, Any] = {}
    fusion_origin: dict[str, Any] | None = None
    if args.fusion_windows:
        fusion, fusion_origin = learn_fusion(args, config, asset_registry(args))
    if args.source is None:
        if not fusion:
            print(f"no bundle written: {args.out} would hold nothing")
            return 1
        bundle = write_bundle(args.out, args.version, fusion, description=args.description,
                              made_from={"learned_fusion": fusion_origin})
        print(f"bundle {bundle.path}: version {bundle.version}, {len(bundle.names)} file(s): {', '.join(bundle.names)}")
        return 0
    settings = kafka_settings(args, config) if args.source == "kafka" else None
    history = open_history(args.source, args.start, args.end, settings)
    total = history.count() if not args.no_progress else None
    priors_too = not args.no_priors
    read = read_history(history.recorded(), total, progress=not args.no_progress,
                        frame_size=config.models.camera_input_size if priors_too else None)
    made_from: dict[str, Any] = {"source": history.description,
                 "from": None if args.start is None else format_time(args.start),
                 "to": None if args.end is None else format_time(args.end)}
    priors, camera = None, None
    if priors_too:
        registry = asset_registry(args) or history.asset_registry()
        camera = train_camera_models(read, config.models, registry)
        with tempfile.TemporaryDirectory() as scratch:  # the replay starts every camera as a new asset will
            cameras = (write_bundle(Path(scratch) / "cameras", "cameras", {CAMERA_MODELS_FILE: camera})
                       if camera else None)
            priors = train_priors(history.recorded(), config, read.entries, registry, progress=not args.no_progress,
                                  camera_bundle=cameras.path if cameras else None, warmup_hours=args.warmup_hours)
    if fusion_origin is not None:
        made_from["learned_fusion"] = fusion_origin
    bundle = train_bundle(read, args.out, args.version, args.description, made_from, priors, camera, fusion)
    text = bundle.manifest["made_from"]["text_model"]
    print(f"read {read.messages} messages: {len(read.entries)} log entries, {read.labelled} labelled"
          f" ({text['positives']} symptom or failure, {text['negatives']} other)"
          + (f", {read.invalid} not decodable" if read.invalid else ""))
    if camera:
        print(f"camera models: {', '.join(bundle.manifest['made_from']['camera_models'])}")
    if priors is not None:
        print("kind priors: " + ("; ".join(f"{kind} ({', '.join(sorted(channels))})"
                                           for kind, channels in sorted(priors.kinds.items())) or "none (too little"
                                 " normal history)"))
    print(f"bundle {bundle.path}: version {bundle.version}, {len(bundle.names)} file(s): {', '.join(bundle.names)}")
    return 0
