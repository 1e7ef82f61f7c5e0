"""``fusewatch import``: files into the Kafka input topics or into a recording directory (docs/import.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fusewatch.commands.common import add_config_option, config_of, event_time, kafka_settings, positive_float
from fusewatch.core.errors import ConfigError

if TYPE_CHECKING:
    from connectors.ingest.files.pipeline import ImportSummary, Transform
    from connectors.ingest.files.problems import ProblemReport
    from connectors.ingest.files.targets import Target
    from fusewatch.core.codec import InputEvent
    from fusewatch.core.plant import Plant

CONFIGURED = "configured"  # --kafka without a value: the configuration's bootstrap servers
SHOWN_PROBLEMS = 20

DESCRIPTION = """\
Import files as input events, either into the Kafka input topics (--kafka) or straight into a recording
directory (--out DIR, the format `fusewatch record` writes; an existing recording is merged with the new events),
so `fusewatch backtest --source DIR` and `fusewatch replay --source DIR` run on imported history without a
cluster. Events are written in event-time order; files stream with bounded memory.

A bad row or file is reported as FILE:LINE:COLUMN: REASON and skipped, and the import goes on (exit status 1
when anything was skipped); with --strict the first problem stops the import before anything is written.

  fusewatch import vibration pump-01_20260105T060000.wav --time-pattern '{asset_id}_%Y%m%dT%H%M%S.wav' --out rec/
  fusewatch import images frames/ --asset pump-01 --out rec/                       # time from EXIF
  fusewatch import logs orders.csv --map asset=Machine,time=Date,text=Description,kind=Type --out rec/
  fusewatch import labels faults.csv --out rec/
"""


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "import", help="import files (vibration, images, CMMS work orders, labels) into Kafka or a recording",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="import_kind", metavar="KIND", required=True)
    _vibration(kinds)
    _images(kinds)
    _logs(kinds)
    _labels(kinds)


def _common(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("target (one of)")
    where = target.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, metavar="DIR",
                       help="a recording directory: created, or merged into when it holds a complete recording")
    where.add_argument("--kafka", nargs="?", const=CONFIGURED, metavar="HOST:PORT",
                       help="the Kafka input topics (bootstrap servers; without a value: kafka.bootstrap_servers of"
                       " the configuration)")
    add_config_option(parser)
    parser.add_argument("--strict", action="store_true", help="stop at the first problem (nothing is written)")
    parser.add_argument("--problems", type=Path, metavar="FILE", help="write every problem to FILE, one a line")
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bars")


def _subparser(kinds: Any, name: str, help_text: str, description: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = kinds.add_parser(
        name, help=help_text, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def _time_zone_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timezone", default="UTC", metavar="ZONE",
                        help="IANA time zone of times written without an offset (default UTC), e.g. Europe/Berlin")


def _vibration(kinds: Any) -> None:
    parser = _subparser(kinds, "vibration", "vibration recordings: CSV, WAV, NPY, MATLAB .mat (v5 and v7.3)", """\
Import vibration recordings, cut into snapshots of --snapshot-s seconds (one VibrationChunk each).

Formats (by suffix): .csv/.txt/.tsv (a header row; one row per sample, value columns chosen with --column),
.wav (PCM integers scaled to [-1, 1), then --scale; float WAV as is), .npy (1-D, or samples x channels), .mat
(MATLAB v5 via scipy, v7.3/HDF5 via h5py; the numeric variable named by --variable).

Time of the first sample, one of: a CSV time column (--time-column, --time-format), the file name
(--time-pattern), or --start (the first file; the following files continue without a gap).

  fusewatch import vibration 'pump-01_20260105T060000.wav' --time-pattern '{asset_id}_%Y%m%dT%H%M%S.wav' --out rec/
  fusewatch import vibration log.csv --asset fan-3 --time-column time --time-format epoch-ms --column accel_x \\
      --unit m/s^2 --kafka
  fusewatch import vibration 97.mat --asset cwru-97 --variable X097_DE_time --sample-rate 12000 \\
      --start 2026-01-05T00:00:00Z --snapshot-s 1 --every 1min --out rec/
""")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--asset", help="asset id of every file (or {asset_id} in --time-pattern)")
    parser.add_argument("--sensor-id", default="accel", help="sensor id (default accel; or {sensor_id} in the pattern)")
    parser.add_argument("--unit", choices=("g", "m/s^2"), default="g", help="unit of the samples (default g)")
    parser.add_argument("--sample-rate", type=positive_float, metavar="HZ",
                        help="samples per second (required for CSV without a time column, NPY and MAT; WAV has its"
                        " own; estimated from a CSV time column)")
    parser.add_argument("--start", type=event_time, metavar="T", help="time of the first sample, RFC 3339")
    parser.add_argument("--time-pattern", metavar="PATTERN",
                        help="file-name pattern with {asset_id}, {sensor_id}, * and %%Y %%m %%d %%H %%M %%S %%f %%j"
                        " %%y %%s %%z, e.g. '{asset_id}_%%Y%%m%%dT%%H%%M%%S.wav'")
    parser.add_argument("--time-column", metavar="NAME", help="CSV column holding each row's time")
    parser.add_argument("--time-format", default="iso", metavar="FORMAT",
                        help="of --time-column: iso (default), epoch-s, epoch-ms, epoch-us, epoch-ns or a strftime"
                        " pattern such as '%%d/%%m/%%Y %%H:%%M:%%S.%%f'")
    _time_zone_option(parser)
    parser.add_argument("--column", action="append", default=[], metavar="[SENSOR=]NAME",
                        help="a CSV value column (repeatable; default: every column but the time column), with its"
                        " sensor id")
    parser.add_argument("--channel", type=int, default=0, help="channel (column) of a WAV, NPY or MAT matrix (0)")
    parser.add_argument("--variable", metavar="NAME", help="MAT variable (default: the only numeric array)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every sample by this factor (1)")
    parser.add_argument("--delimiter", default=",", help="CSV delimiter (default ,)")
    parser.add_argument("--snapshot-s", type=positive_float, default=1.0, metavar="S",
                        help="snapshot length in seconds (default 1); the last snapshot of a file may be shorter")
    parser.add_argument("--every", metavar="DURATION",
                        help="keep one snapshot per DURATION (e.g. 1min: a gateway sending 1 s each minute)")
    parser.add_argument("--plant", type=Path, metavar="FILE",
                        help="the plant file: the asset must be one of its assets; its bearing for --edge-features")
    parser.add_argument("--edge-features", action="store_true",
                        help="import each snapshot's vibration features instead of its samples (wire kind 4,"
                        " docs/edge-features.md); the envelope features need the asset's bearing from --plant")
    _common(parser)
    parser.set_defaults(run=run_vibration)


def _images(kinds: Any) -> None:
    parser = _subparser(kinds, "images", "camera frames: a folder of JPEG/PNG images", """\
Import JPEG and PNG images (files, or folders searched recursively) as camera frames; the image bytes are kept
as they are. Time: EXIF DateTimeOriginal (default; SubSecTimeOriginal and OffsetTimeOriginal are used when
present, else --timezone) or the file name (--time-pattern, which may carry {asset_id} and {camera_id}).

  fusewatch import images frames/pump-01/ --asset pump-01 --camera-id top --out rec/
  fusewatch import images frames/ --time-pattern '{asset_id}-{camera_id}-%Y%m%d-%H%M%S.jpg' --kafka
""")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE_OR_DIR")
    parser.add_argument("--asset", help="asset id of every image (or {asset_id} in --time-pattern)")
    parser.add_argument("--camera-id", default="cam", help="camera id (default cam; or {camera_id} in the pattern)")
    parser.add_argument("--time-from", choices=("exif", "name"), default=None,
                        help="where the time comes from (default: name with --time-pattern, else exif)")
    parser.add_argument("--time-pattern", metavar="PATTERN", help="file-name pattern, as for vibration")
    _time_zone_option(parser)
    _common(parser)
    parser.set_defaults(run=run_images)


def _logs(kinds: Any) -> None:
    parser = _subparser(kinds, "logs", "maintenance logs / work orders: a CMMS export CSV", """\
Import a CMMS export (CSV with a header row) as maintenance-log entries. --map names the columns: asset, time
and text are required (asset may be --asset instead), kind and author optional. Kind values are mapped to
fusewatch's kinds (inspection, symptom, repair, failure, note) with the built-in table of docs/import.md and
--kind-map; an unknown kind becomes no kind (inferred from the text later) or, with --unknown-kind error, a
problem of that row.

  fusewatch import logs orders.csv --map asset=Machine,time=Date,text=Description,kind=Type,author=Tech \\
      --time-format '%d/%m/%Y %H:%M' --timezone Europe/Berlin --kind-map 'PM01=repair,PM03=inspection' --out rec/
  fusewatch import logs excavators.csv --map asset=Asset,time=BscStartDate,text=OriginalShorttext \\
      --time-format %Y-%m-%d --asset-prefix excavator- --out rec/      # the NIST nestor work orders
""")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--map", required=True, metavar="FIELD=COLUMN,...",
                        help="asset=COL,time=COL,text=COL[,kind=COL][,author=COL]")
    parser.add_argument("--asset", help="asset id of every row (instead of an asset column)")
    parser.add_argument("--asset-prefix", default="", help="prepended to every asset id (e.g. excavator-)")
    parser.add_argument("--time-format", default="iso", metavar="FORMAT",
                        help="iso (default), epoch-s|ms|us|ns or a strftime pattern such as %%Y-%%m-%%d")
    _time_zone_option(parser)
    parser.add_argument("--kind-map", default="", metavar="VALUE=KIND,...",
                        help="extra kind table, over the built-in one (KIND: a fusewatch kind or none)")
    parser.add_argument("--unknown-kind", choices=("none", "error"), default="none",
                        help="a kind value in neither table: no kind (default) or a problem of the row")
    parser.add_argument("--delimiter", default=",", help="CSV delimiter (default ,)")
    parser.add_argument("--encoding", default="utf-8-sig", help="text encoding of the file (default UTF-8)")
    _common(parser)
    parser.set_defaults(run=run_logs)


def _labels(kinds: Any) -> None:
    parser = _subparser(kinds, "labels", "failure-event labels: the CSV `fusewatch backtest --labels` reads", """\
Import a labels file asset_id,fault_start,failure (RFC 3339; fault_start or failure may be empty). Into a
recording (--out DIR) the checked rows are added to DIR/labels.csv, for
`fusewatch backtest --source DIR --labels DIR/labels.csv`; with --as-logs, and always into Kafka, each failure
also becomes a maintenance-log entry of kind `failure` at its time (what the labeler and the default labels of
backtest read; the fault start is then not kept).

  fusewatch import labels faults.csv --out rec/
  fusewatch import labels faults.csv --kafka
""")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--as-logs", action="store_true", help="into a recording: also add failure log entries")
    _common(parser)
    parser.set_defaults(run=run_labels)


# -- running -----------------------------------------------------------------------------------------------------
def edge_transform(args: argparse.Namespace, plant: Plant | None = None) -> Transform | None:
    """The transform applied to every event before the target: features at the edge with ``--edge-features``, with
    the bearings of ``plant`` (the ``--plant`` file)."""
    if not getattr(args, "edge_features", False):
        return None
    from connectors.ingest.edge import EdgeFeatures
    from fusewatch.core.events import VibrationChunk

    edge = EdgeFeatures.for_registry(None if plant is None else plant.registry())

    def transform(event: InputEvent) -> InputEvent:
        return edge.convert(event) if isinstance(event, VibrationChunk) else event

    return transform


def _plant_of(args: argparse.Namespace) -> Plant | None:
    """The ``--plant`` file; an ``--asset`` must be one of its assets."""
    if getattr(args, "plant", None) is None:
        return None
    from fusewatch.core.plant import load_plant

    plant = load_plant(args.plant)
    if args.asset is not None and plant.asset(args.asset) is None:
        known = ", ".join(asset.id for asset in plant.assets)
        raise ConfigError(f"--asset {args.asset}: not an asset of {args.plant} ({known})")
    return plant


def _report(args: argparse.Namespace) -> ProblemReport:
    from connectors.ingest.files.problems import ProblemReport

    return ProblemReport(strict=args.strict)


def _target(args: argparse.Namespace, kind: str) -> Target:
    from connectors.ingest.files.targets import KafkaTarget, RecordingTarget

    config = config_of(args)
    if args.out is not None:
        return RecordingTarget(args.out, config.kafka.partitions,
                               {"import": kind, "files": len(args.files), "first": str(args.files[0])})
    if args.kafka == CONFIGURED:
        args.kafka = None
    return KafkaTarget(kafka_settings(args, config))


def _finish(args: argparse.Namespace, summary: ImportSummary, extra: list[str] | None = None) -> int:
    for line in summary.lines() + (extra or []):
        print(line)
    report = summary.problems
    for line in report.lines()[:SHOWN_PROBLEMS]:
        print(f"  {line}")
    if report.count > SHOWN_PROBLEMS:
        print(f"  ... {report.count - SHOWN_PROBLEMS} more" + ("" if args.problems else " (see --problems FILE)"))
    if args.problems is not None:
        args.problems.parent.mkdir(parents=True, exist_ok=True)
        args.problems.write_text("".join(line + "\n" for line in report.lines()), encoding="utf-8")
        print(f"problems: {args.problems}")
    rate = summary.input_bytes / summary.seconds / 1e6 if summary.seconds > 0 else 0.0
    print(f"took {summary.seconds:.1f} s ({rate:.1f} MB/s of events)")
    return 1 if report.count else 0


def _files(paths: list[Path]) -> list[Path]:
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise ConfigError(f"not found: {', '.join(missing)}")
    return paths


def run_vibration(args: argparse.Namespace) -> int:
    from connectors.ingest.files.pipeline import reading_bar, run_import
    from connectors.ingest.files.timing import NamePattern, TimeFormat, parse_duration
    from connectors.ingest.files.vibration import VibrationOptions, VibrationReader

    columns: list[tuple[str | None, str]] = []
    for item in args.column:
        sensor, sep, name = item.partition("=")
        columns.append((sensor, name) if sep else (None, item))
    try:
        every = parse_duration(args.every) if args.every is not None else None
    except ValueError as exc:
        raise ConfigError(f"--every: {exc}") from None
    options = VibrationOptions(
        asset_id=args.asset, sensor_id=args.sensor_id, unit=args.unit, sample_rate_hz=args.sample_rate,
        start_ns=args.start, time_column=args.time_column, time_format=TimeFormat(args.time_format, args.timezone),
        name_pattern=NamePattern(args.time_pattern, args.timezone) if args.time_pattern else None,
        columns=tuple(columns), channel=args.channel, variable=args.variable, scale=args.scale,
        snapshot_s=args.snapshot_s, every_s=every, delimiter=args.delimiter)
    plant = _plant_of(args)
    files = _files(args.files)
    report, target = _report(args), _target(args, "vibration")
    with reading_bar(files, not args.no_progress) as bar:
        events = VibrationReader(options, report, bar.update).read(files)
        summary = run_import(events, target, report, edge_transform(args, plant), not args.no_progress)
    return _finish(args, summary)


def run_images(args: argparse.Namespace) -> int:
    from connectors.ingest.files.images import ImageOptions, ImageReader, image_files
    from connectors.ingest.files.pipeline import reading_bar, run_import
    from connectors.ingest.files.timing import NamePattern

    time_from: Literal["exif", "name"] = args.time_from or ("name" if args.time_pattern else "exif")
    if time_from == "name" and not args.time_pattern:
        raise ConfigError("--time-from name needs --time-pattern")
    options = ImageOptions(asset_id=args.asset, camera_id=args.camera_id, time_from=time_from,
                           name_pattern=NamePattern(args.time_pattern, args.timezone) if args.time_pattern else None,
                           timezone=args.timezone)
    files = image_files(_files(args.files))
    report, target = _report(args), _target(args, "images")
    with reading_bar(files, not args.no_progress) as bar:
        events = ImageReader(options, report, bar.update).read(files)
        summary = run_import(events, target, report, edge_transform(args), not args.no_progress)
    return _finish(args, summary)


def run_logs(args: argparse.Namespace) -> int:
    from connectors.ingest.files.logs import LogOptions, LogReader, parse_kind_map, parse_mapping
    from connectors.ingest.files.pipeline import reading_bar, run_import
    from connectors.ingest.files.timing import TimeFormat

    options = LogOptions(mapping=parse_mapping(args.map), asset_id=args.asset, asset_prefix=args.asset_prefix,
                         time_format=TimeFormat(args.time_format, args.timezone),
                         kind_map=parse_kind_map(args.kind_map), unknown_kind=args.unknown_kind,
                         delimiter=args.delimiter, encoding=args.encoding)
    files = _files(args.files)
    report = _report(args)
    reader = LogReader(options, report)
    target = _target(args, "logs")
    with reading_bar(files, not args.no_progress) as bar:
        reader.progress = bar.update
        summary = run_import(reader.read(files), target, report, edge_transform(args), not args.no_progress)
    return _finish(args, summary)


def run_labels(args: argparse.Namespace) -> int:
    from connectors.ingest.files.labels import read_labels, write_labels
    from connectors.ingest.files.pipeline import run_import

    report = _report(args)
    rows = [row for path in _files(args.files) for row in read_labels(path, report)]
    extra: list[str] = []
    target = _target(args, "labels")
    if args.out is not None:
        path, count = write_labels(args.out, rows)
        extra.append(f"labels: {path} holds {count} label(s); fusewatch backtest --source {args.out} reads them")
    logs = [entry for entry in (row.failure_log() for row in rows) if entry is not None]
    if args.out is None or args.as_logs:
        summary = run_import(logs, target, report, None, not args.no_progress)
    else:
        from connectors.ingest.files.pipeline import ImportSummary

        summary = ImportSummary(f"{args.out / 'labels.csv'}", report, delivered={"labels": len(rows)})
    extra.insert(0, f"{len(rows)} label(s) read, {len(logs)} with a failure time")
    return _finish(args, summary, extra)

