"""``fusewatch plant check|example``: validate a plant file, or print a commented example to start from."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config" / "plant.example.toml"


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "plant",
        help="check a plant file (assets, bearings, where each stream comes from), or print an example",
        description="A plant file describes the plant once: each asset (id, kind, bearing kinematics, camera) and"
        " where each of its streams comes from (an MQTT topic, OPC UA nodes, a camera snapshot URL, files). The"
        " worker reads its assets from it, the bridges and `fusewatch import` their sources. See"
        " docs/connect-a-plant.md.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="validate a plant file: every problem with file, line, key and reason (exit 1), else a summary",
        description="Validate FILE and list every problem found, one line each as FILE:LINE: KEY: REASON, with exit"
        " status 1; a valid file prints one line per asset (kind, bearing defect frequencies, streams' sources)"
        " and exits 0. Passwords are not read (only where they are to be read from is checked).",
    )
    check.add_argument("file", type=Path, metavar="FILE", help="the plant file (TOML)")
    check.set_defaults(run=run_check)
    example = actions.add_parser("example", help="print a commented plant file with three assets to start from")
    example.set_defaults(run=run_example)


def run_check(args: argparse.Namespace) -> int:
    from fusewatch.core.errors import PlantFileError
    from fusewatch.core.plant import load_plant

    try:
        plant = load_plant(args.file)
    except PlantFileError as exc:
        print("\n".join(str(problem) for problem in exc.problems), file=sys.stderr)
        print(f"{args.file}: {len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''}", file=sys.stderr)
        return 1
    print(f"{args.file}: plant {plant.plant.name!r}, {len(plant.assets)} asset{'s' if len(plant.assets) != 1 else ''}")
    for asset in plant.assets:
        bearing = "no bearing"
        if asset.bearing is not None:
            k = asset.bearing.kinematics()
            bearing = (f"shaft {k.shaft_hz:g} Hz, BPFO {k.bpfo_hz:.1f}, BPFI {k.bpfi_hz:.1f}, BSF {k.bsf_hz:.1f},"
                       f" FTF {k.ftf_hz:.2f} Hz")
        streams = []
        for modality in ("vibration", "frame", "log"):
            stream = plant.stream(asset, modality)
            if stream is None:
                continue
            where = {"mqtt": f"mqtt {plant.mqtt_topic(asset.id, modality)}",
                     "opcua": f"opcua {stream.node}", "http": f"http {stream.url}", "file": "files"}[stream.source]
            streams.append(f"{modality}: {where}")
        print(f"  {asset.id:<16} {asset.kind:<8} {bearing}; " + ("; ".join(streams) or "no streams"))
    return 0


def run_example(args: argparse.Namespace) -> int:
    from fusewatch.core.errors import ConfigError

    try:
        sys.stdout.write(EXAMPLE.read_text(encoding="utf-8"))
    except OSError as exc:  # an installation without the repository's deploy/ folder
        raise ConfigError(f"the example plant file {EXAMPLE} cannot be read ({exc.strerror or exc}); see"
                          " docs/connect-a-plant.md") from None
    return 0
