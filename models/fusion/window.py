"""How the fusion stage runs a method: one window's calibrated channels in, a :class:`FusionResult` out.

A window's *channels* are the modalities (``vibration``, ``camera``, ``logs``) and ``early``, the early-fusion
detector's score (:mod:`models.early`), each calibrated and present only when warm. Besides the channels a
method sees the early detector's ``shares`` (each modality's part of its score) and, through :meth:`learn`, the
windows the maintenance log has labelled. A late fuser (:class:`~models.base.Fuser`) sees the modalities only
(``fusewatch.core.events.MODALITIES``): :class:`OverModalities` leaves the other channels out.

>>> from models.fusion.late import LateFusion
>>> fisher = OverModalities(LateFusion("fisher"))
>>> fisher.fuse({"vibration": 0.999, "early": 0.999999}, {}).fused   # the early channel is not a modality
0.3
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fusewatch.core.events import MODALITIES
from models.base import Fuser, FusionResult


@dataclass(frozen=True)
class FusionContext:
    """What the fusion stage knows of a window's asset besides its channels: its kind (``None``: unknown) and the
    hours since its last repair entry, or since its first window."""

    kind: str | None
    hours_since_repair: float


@runtime_checkable
class WindowFusion(Protocol):
    """A fusion method as the fusion stage runs it (what :func:`models.fusion.registry.build_methods` returns)."""

    def fuse(self, x: Mapping[str, float], shares: Mapping[str, float],
             context: FusionContext | None = None) -> FusionResult:
        """The fused result of one window: ``x`` its calibrated channels, ``shares`` the early detector's,
        ``context`` its asset's (only the learned method uses it)."""

    def learn(self, x: Mapping[str, float], label: bool) -> None:
        """Learn from one window the log has labelled (``x``: the modalities' calibrated scores)."""


class OverModalities:
    """A late fuser run as a window method: it sees the modalities' calibrated scores, nothing else."""

    def __init__(self, fuser: Fuser, modalities: Sequence[str] = MODALITIES) -> None:
        self.fuser = fuser
        self.modalities = tuple(modalities)

    def fuse(self, x: Mapping[str, float], shares: Mapping[str, float],
             context: FusionContext | None = None) -> FusionResult:
        """The fuser's result over the present modalities (in the order of ``x``)."""
        return self.fuser.fuse_one({m: c for m, c in x.items() if m in self.modalities})

    def learn(self, x: Mapping[str, float], label: bool) -> None:
        """Pass the labelled window on to the fuser (late fusion's ``learn_one`` does nothing, stacking learns)."""
        self.fuser.learn_one({m: c for m, c in x.items() if m in self.modalities}, label)
