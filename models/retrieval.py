"""Cross-modal retrieval: past incidents found through one shared embedding of window signatures.

A window's *signature* is a sparse dict mixing every modality: the surprise of each calibrated channel
(``surprise:vibration``), the standardised deviations of its top features (``feature:env_bpfo``,
``feature:camera_peak_error``) and the words of its maintenance-log entries (``word:bearing``). All of them
are hashed into one fixed-size vector (signed feature hashing, L2-normalised), so a vibration-led window and
an incident remembered from its log text and camera heat spot are comparable by cosine similarity: the
embedding is shared by the modalities rather than one per modality.

:class:`IncidentMemory` keeps the most recent ``capacity`` incidents (a failure or repair written in the log,
with the signature of the most anomalous window before it, its log text and a window summary) and returns
the most similar ones for a new alert.

>>> memory = IncidentMemory(dim=64)
>>> memory.add({"surprise:vibration": 5.0, "feature:env_bpfo": 6.0, "word:bearing": 1.0},
...            {"text": "replaced NDE bearing, outer race spalled"})
>>> memory.add({"surprise:camera": 4.0, "feature:camera_peak_error": 5.0, "word:leak": 1.0},
...            {"text": "replaced mechanical seal, leak stopped"})
>>> best = memory.query({"surprise:vibration": 3.0, "feature:env_bpfo": 4.0}, k=1)[0]
>>> best.summary["text"], best.similarity > 0.8
('replaced NDE bearing, outer race spalled', True)
"""

from __future__ import annotations

import math
import zlib
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


def signature(
    surprise: Mapping[str, float], features: Iterable[tuple[str, float]], words: Iterable[str]
) -> dict[str, float]:
    """A window's signature from its channels' surprise (decades), top features (name, z) and log words.

    >>> signature({"vibration": 2.0}, [("kurtosis", -3.0)], ["bearing", "bearing"])
    {'surprise:vibration': 2.0, 'feature:kurtosis': 3.0, 'word:bearing': 1.0}
    """
    sig: dict[str, float] = {f"surprise:{m}": float(v) for m, v in surprise.items() if v > 0}
    for name, z in features:
        sig[f"feature:{name}"] = abs(float(z))
    for word in words:
        sig[f"word:{word}"] = 1.0
    return sig


def embed(sig: Mapping[str, float], dim: int = 128) -> np.ndarray:
    """The signed feature-hashing embedding of a signature, L2-normalised (all zeros if it is empty)."""
    vector = np.zeros(dim)
    for name, value in sig.items():
        h = zlib.crc32(name.encode())
        vector[h % dim] += value if (h >> 16) & 1 else -value
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


@dataclass(frozen=True)
class IncidentMatch:
    """A remembered incident and how similar it is (cosine) to the query."""

    similarity: float
    summary: Mapping[str, Any]


class IncidentMemory:
    """The latest ``capacity`` incidents, searchable by signature (brute-force cosine: a few hundred rows)."""

    def __init__(self, dim: int = 128, capacity: int = 500) -> None:
        self.dim = dim
        self._incidents: deque[tuple[np.ndarray, dict[str, Any]]] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._incidents)

    def add(self, sig: Mapping[str, float], summary: Mapping[str, Any]) -> None:
        """Remember an incident: its signature and a summary (log text, asset, time, leading modality, ...)."""
        self._incidents.append((embed(sig, self.dim), dict(summary)))

    def query(self, sig: Mapping[str, float], k: int = 3, min_similarity: float = 0.1) -> list[IncidentMatch]:
        """The ``k`` most similar incidents to a signature, most similar first."""
        if not self._incidents:
            return []
        query = embed(sig, self.dim)
        matrix = np.stack([vector for vector, _ in self._incidents])
        similarity = matrix @ query
        order = np.argsort(-similarity, kind="stable")[:k]
        return [
            IncidentMatch(round(float(similarity[i]), 4), self._incidents[i][1])
            for i in order
            if similarity[i] >= min_similarity and math.isfinite(similarity[i])
        ]
