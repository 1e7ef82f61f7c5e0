"""The elpv data set: 2,624 electroluminescence images of solar cells, labelled with a defect probability.

The images are read straight from the pinned wheel ``elpv_dataset-1.0.0.post1-py3-none-any.whl``
(``elpv_dataset/data/images/cellNNNN.png``, 300x300 8-bit grayscale) with the labels of
``elpv_dataset/data/labels.csv`` (path, defect probability in {0, 1/3, 2/3, 1}, module type mono/poly);
nothing is unpacked. Decoding all 2,624 PNGs takes a few seconds, so no decoded copy is cached.
Licence CC BY-NC-SA 4.0; docs/datasets.md gives the citations.

>>> parse_labels("images/cell0001.png  1.0  mono\\nimages/cell0004.png  0.3333333333333333  poly\\n")
[('cell0001', 1.0, 'mono'), ('cell0004', 0.3333333333333333, 'poly')]
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import numpy as np
from PIL import Image

from connectors.sources.datasets.fetch import fetch
from fusewatch.core.errors import DatasetFetchError

DATA_PREFIX = "elpv_dataset/data/"
LABELS = DATA_PREFIX + "labels.csv"
IMAGE_SIZE = 300
_PROBABILITIES = (0.0, 1 / 3, 2 / 3, 1.0)


@dataclass(frozen=True)
class ElpvCell:
    """One solar-cell image: its name (``cell0001``), 300x300 read-only ``uint8`` pixels, defect probability, type."""

    name: str
    pixels: np.ndarray
    defect_probability: float
    cell_type: Literal["mono", "poly"]


def parse_labels(text: str, source: str = LABELS) -> list[tuple[str, float, Literal["mono", "poly"]]]:
    """Parse ``labels.csv`` (whitespace separated: image path, defect probability, mono/poly) in file order."""
    rows: list[tuple[str, float, Literal["mono", "poly"]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            image, probability_text, cell_type = fields
            probability = float(probability_text)
        except ValueError:
            raise DatasetFetchError(f"{source}, line {number}: expected 'path probability type': {line!r}") from None
        if cell_type not in ("mono", "poly"):
            raise DatasetFetchError(f"{source}, line {number}: cell type {cell_type!r} is neither mono nor poly")
        if not any(abs(probability - p) < 1e-6 for p in _PROBABILITIES):
            raise DatasetFetchError(f"{source}, line {number}: defect probability {probability} not in 0, 1/3, 2/3, 1")
        name = image.rsplit("/", 1)[-1].removesuffix(".png")
        rows.append((name, probability, cast(Literal["mono", "poly"], cell_type)))
    return rows


def _decode(archive: zipfile.ZipFile, member: str, source: Path) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(archive.read(member))) as image:
            pixels = np.asarray(image.convert("L") if image.mode != "L" else image, dtype=np.uint8)
    except KeyError:
        raise DatasetFetchError(f"{source}: {member} is missing from the archive") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetFetchError(f"{source}: cannot decode {member}: {exc}") from exc
    if pixels.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise DatasetFetchError(f"{source}: {member} is {pixels.shape}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    pixels.setflags(write=False)
    return pixels


def load_elpv(path: Path | None = None) -> list[ElpvCell]:
    """All cells of the elpv wheel at ``path`` (default: the pinned wheel, fetched), in ``labels.csv`` order.

    Any unreadable archive, label line or image raises :class:`DatasetFetchError` naming the file.
    """
    source = fetch("elpv-dataset") if path is None else Path(path)
    try:
        with zipfile.ZipFile(source) as archive:
            try:
                labels = archive.read(LABELS).decode("utf-8")
            except KeyError:
                raise DatasetFetchError(f"{source}: {LABELS} is missing from the archive") from None
            rows = parse_labels(labels, f"{source}: {LABELS}")
            return [
                ElpvCell(name, _decode(archive, f"{DATA_PREFIX}images/{name}.png", source), probability, cell_type)
                for name, probability, cell_type in rows
            ]
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise DatasetFetchError(f"{source}: not a readable elpv wheel: {exc}") from exc
