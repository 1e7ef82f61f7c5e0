"""Model bundles: what a fleet's history taught, as a directory that sites can share.

A bundle is an immutable, versioned directory:

- ``manifest.json``: the format, the bundle's version, when and from what it was made, and for every other file
  its size and SHA-256;
- ``*.safetensors``: tensors (model weights), in the safetensors format, whose reader runs no code;
- ``*.npz``: numpy arrays, read with ``allow_pickle=False``;
- ``*.json``: everything else.

Never pickles: a bundle travels between sites, and unpickling a file runs whatever code it names. Loading checks
every file against the manifest before anything is parsed, and refuses files the manifest does not list, so a
bundle is used whole and as it was written, or not at all (:class:`BundleError` says which file and why).

>>> import tempfile
>>> directory = Path(tempfile.mkdtemp()) / "pumps-2026.12"
>>> written = write_bundle(directory, "2026.12", {"priors.json": {"warmup_hours": 2},
...                                             "camera.safetensors": {"w": np.ones((2, 2), np.float32)}})
>>> bundle = load_bundle(directory)
>>> bundle.version, bundle.json("priors.json"), bundle.tensors("camera.safetensors")["w"].sum()
('2026.12', {'warmup_hours': 2}, np.float32(4.0))
>>> edited = (directory / "priors.json").read_text().replace("2", "0")   # same size, other content
>>> _ = (directory / "priors.json").write_text(edited)
>>> try:
...     load_bundle(directory)
... except BundleError as exc:
...     print(exc.problem)
priors.json: its SHA-256 is not the manifest's (changed or damaged)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from fusewatch.core import __version__
from fusewatch.core.errors import BundleError

FORMAT = 1
MANIFEST = "manifest.json"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PART = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\.(json|npz|safetensors)$")

Arrays = Mapping[str, np.ndarray]

ANY_KIND = "*"
"""The asset kind of a bundle's parts learned over every kind: they serve an asset whose kind has none of its own."""


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: its manifest, and the verified bytes of its files (parsed on request)."""

    path: Path
    manifest: dict[str, Any]
    _files: dict[str, bytes] = field(repr=False)

    @property
    def version(self) -> str:
        """The version every score made with this bundle names (in its ``model_version``)."""
        return str(self.manifest["version"])

    @property
    def names(self) -> list[str]:
        """The bundle's files besides the manifest."""
        return sorted(self._files)

    def json(self, name: str) -> Any:
        """The content of a ``.json`` file."""
        data = self._bytes(name, ".json")
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._error(f"{name}: not valid JSON ({exc})") from None

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """The arrays of an ``.npz`` file (object arrays, which would need pickle, are refused)."""
        data = self._bytes(name, ".npz")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
                return {key: loaded[key] for key in loaded.files}
        except (ValueError, OSError) as exc:
            raise self._error(f"{name}: not a numpy .npz without pickles ({exc})") from None

    def tensors(self, name: str) -> dict[str, np.ndarray]:
        """The tensors of a ``.safetensors`` file, as numpy arrays."""
        data = self._bytes(name, ".safetensors")
        try:
            return dict(load_safetensors(data))
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise self._error(f"{name}: not a safetensors file ({exc})") from None

    def has(self, name: str) -> bool:
        """Whether the bundle holds a file of that name."""
        return name in self._files

    def _bytes(self, name: str, suffix: str) -> bytes:
        if not name.endswith(suffix):
            raise self._error(f"{name}: expected a {suffix} file")
        if name not in self._files:
            raise self._error(f"{name}: not in this bundle (it has {', '.join(self.names) or 'no files'})")
        return self._files[name]

    def _error(self, problem: str) -> BundleError:
        return BundleError(self.path, problem)


def write_bundle(directory: str | Path, version: str, parts: Mapping[str, Any], description: str = "",
                 made_from: Mapping[str, Any] | None = None) -> Bundle:
    """Write a new bundle at ``directory`` (which must not exist: a bundle is never changed, only replaced by one
    of another version). ``parts`` maps file names to their content: a JSON-able object for ``.json``, a mapping
    of names to arrays for ``.npz`` and ``.safetensors``. ``made_from`` records what it was learned from."""
    target = Path(directory)
    if not _VERSION.match(version):
        raise BundleError(target, f"version {version!r}: use letters, digits, '.', '_' and '-' (at most 64)")
    if target.exists():
        raise BundleError(target, "exists already; a bundle is never overwritten, write one with a new version")
    files = {name: _encode(target, name, content) for name, content in parts.items()}
    manifest = {
        "format": FORMAT, "version": version, "description": description,
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "fusewatch": __version__,
        "made_from": dict(made_from or {}),
        "files": {name: {"bytes": len(data), "sha256": _sha256(data)} for name, data in sorted(files.items())},
    }
    staging = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
    staging.mkdir(parents=True)
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(staging, target)  # whole or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Bundle(target, manifest, files)


def load_bundle(directory: str | Path) -> Bundle:
    """Read a bundle and check every file against its manifest; :class:`BundleError` names what is wrong."""
    path = Path(directory)
    if not path.is_dir():
        raise BundleError(path, "no such directory")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise BundleError(path, f"no {MANIFEST}: not a bundle") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(path, f"{MANIFEST}: not valid JSON ({exc})") from None
    listed = _check_manifest(path, manifest)
    present = {entry.name for entry in path.iterdir()} - {MANIFEST}
    if present - set(listed):
        raise BundleError(path, f"{', '.join(sorted(present - set(listed)))}: not in the manifest")
    files: dict[str, bytes] = {}
    for name, entry in listed.items():
        try:
            data = (path / name).read_bytes()
        except FileNotFoundError:
            raise BundleError(path, f"{name}: listed in the manifest but missing") from None
        if len(data) != entry["bytes"]:
            raise BundleError(path, f"{name}: {len(data)} bytes, the manifest says {entry['bytes']} (truncated?)")
        if _sha256(data) != entry["sha256"]:
            raise BundleError(path, f"{name}: its SHA-256 is not the manifest's (changed or damaged)")
        files[name] = data
    return Bundle(path, manifest, files)


def _check_manifest(path: Path, manifest: Any) -> dict[str, dict[str, Any]]:
    """The manifest's file entries, once its shape is checked."""
    if not isinstance(manifest, dict):
        raise BundleError(path, f"{MANIFEST}: must be a JSON object")
    if manifest.get("format") != FORMAT:
        raise BundleError(path, f"{MANIFEST}: format {manifest.get('format')!r}, this fusewatch reads format {FORMAT}")
    if not isinstance(manifest.get("version"), str) or not _VERSION.match(manifest["version"]):
        raise BundleError(path, f"{MANIFEST}: version {manifest.get('version')!r} is missing or not a valid version")
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        raise BundleError(path, f"{MANIFEST}: files must be an object of name → {{bytes, sha256}}")
    for name, entry in listed.items():
        if not _PART.match(name):
            raise BundleError(path, f"{MANIFEST}: {name!r} is not a bundle file name (.json, .npz, .safetensors)")
        if not (isinstance(entry, dict) and isinstance(entry.get("bytes"), int)
                and isinstance(entry.get("sha256"), str)):
            raise BundleError(path, f"{MANIFEST}: the entry of {name} needs bytes and sha256")
    return listed


def _encode(path: Path, name: str, content: Any) -> bytes:
    if not _PART.match(name):
        raise BundleError(path, f"{name!r}: a bundle file is named [a-z0-9_.-] and ends .json, .npz or .safetensors")
    if name.endswith(".json"):
        return (json.dumps(content, indent=1, sort_keys=True) + "\n").encode()
    arrays = {key: np.asarray(value) for key, value in dict(content).items()}
    if any(array.dtype == object for array in arrays.values()):
        raise BundleError(path, f"{name}: object arrays would need pickle; store numbers or JSON instead")
    if name.endswith(".safetensors"):
        return bytes(save_safetensors({key: np.ascontiguousarray(a) for key, a in arrays.items()}))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in sorted(arrays.items()):  # a fixed member time: the same arrays give the same bytes
            with archive.open(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
