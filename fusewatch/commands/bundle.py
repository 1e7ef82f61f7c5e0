"""``fusewatch bundle show``: check a model bundle file by file and say what it holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "bundle",
        help="check a model bundle and show what it holds",
        description="A model bundle is a versioned directory of what a fleet's history taught: a manifest with"
        " every file's size and SHA-256, weights as safetensors, arrays as npz without pickles, the rest JSON"
        " (docs/models.md, \"Bundles\"). `bundle show DIR` reads it as a worker would, checking every file"
        " against the manifest, and prints its version, origin and files; a damaged bundle is one error naming"
        " the file (exit 2).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="check every file against the manifest and print the bundle's summary")
    show.add_argument("directory", type=Path, help="the bundle's directory")
    show.add_argument("--json", action="store_true", help="print the manifest as JSON instead of a summary")
    show.set_defaults(run=_show)


def _show(args: argparse.Namespace) -> int:
    from models.bundle import load_bundle

    bundle = load_bundle(args.directory)
    manifest = bundle.manifest
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    print(f"bundle {bundle.path}: version {bundle.version}, format {manifest['format']}")
    for key in ("description", "created", "fusewatch"):
        if manifest.get(key):
            print(f"  {key + ':':<12} {manifest[key]}")
    if manifest.get("made_from"):
        print(f"  {'made from:':<12} {json.dumps(manifest['made_from'], sort_keys=True)}")
    files = manifest["files"]
    total = sum(entry["bytes"] for entry in files.values())
    print(f"  files (every SHA-256 checked): {len(files)}, {total:,} bytes")
    for name, entry in sorted(files.items()):
        print(f"    {name:<32} {entry['bytes']:>12,}  {entry['sha256'][:16]}…")
    return 0
