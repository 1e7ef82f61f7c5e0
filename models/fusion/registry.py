"""The fusion methods, one entry each: the table everything that names a fusion method reads.

An entry holds the method's name — the ``[models] fusion`` value and the evaluation's row —, a one-line
description, and how to build it: a late method gives ``fuser``, a :class:`~models.base.Fuser` of the
modalities' calibrated scores (that is what makes it late, and usable as ``[models] hybrid_late``); any other
method gives ``window``, which builds a :class:`~models.fusion.window.WindowFusion` from the settings and the
methods built before it (in table order). The configuration's allowed values (:data:`FusionName`,
:data:`LateName`, checked against the table on import), the fusion stage, the evaluation's rows and the tests
all come from here.

>>> for entry in FUSION_METHODS:
...     print(f"{entry.name:<9}{'late' if entry.late else '':<5}{entry.description}")
early         one detector over every modality's features, its score calibrated like a modality's
fisher   late Fisher's combination of the modalities' p-values (1 - calibrated); the default
weighted late the weighted mean of the modalities' calibrated scores
noisy_or late 1 - prod(1 - c**8): any one strongly anomalous modality drives it
stacking late online logistic regression on the modalities' evidence, learned from the log's labels
hybrid        the mean of early fusion and the hybrid_late method (weight: hybrid_early_weight)
learned       a gate over the channels learned from a fleet's failures (a bundle trained with one)
>>> describe()
'late (fisher, weighted, noisy_or, stacking), early, hybrid, or learned'
>>> fusion_method("average")
Traceback (most recent call last):
    ...
ValueError: unknown fusion method 'average'; allowed: early, fisher, weighted, noisy_or, stacking, hybrid, learned
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from fusewatch.core.events import MODALITIES
from models.base import Fuser
from models.fusion.early_channel import EarlyChannelFusion
from models.fusion.hybrid import HybridFusion
from models.fusion.late import LateFusion
from models.fusion.learned import LearnedFusion
from models.fusion.stacking import StackingFusion
from models.fusion.window import OverModalities, WindowFusion

#: Every method's name, as the configuration types ``[models] fusion`` (the default first; same set as the table).
FusionName = Literal["fisher", "weighted", "noisy_or", "stacking", "early", "hybrid", "learned"]
#: The late methods' names, as the configuration types ``[models] hybrid_late``.
LateName = Literal["fisher", "weighted", "noisy_or", "stacking"]


class FusionOptions(Protocol):
    """The settings the methods are built from: the ``[models]`` section (``streams.model_config.ModelConfig``)."""

    @property
    def fusion_decades(self) -> float:
        """The fused score 1.0 stands for a one-in-``10**fusion_decades`` window."""

    @property
    def stacking_threshold_decades(self) -> float:
        """Stacking: the total surprise (decades) scored 0.5 before any label is learned."""

    @property
    def hybrid_late(self) -> str:
        """Hybrid: the name of its late method."""

    @property
    def hybrid_early_weight(self) -> float:
        """Hybrid: the weight of early fusion in the blend."""


@dataclass(frozen=True)
class FusionMethod:
    """One fusion method: give ``fuser`` for a late method, ``window`` for any other (exactly one of them)."""

    name: FusionName
    description: str
    fuser: Callable[[FusionOptions], Fuser] | None = None
    window: Callable[[FusionOptions, Mapping[str, WindowFusion]], WindowFusion] | None = None

    def __post_init__(self) -> None:
        if (self.fuser is None) == (self.window is None):
            raise TypeError(f"fusion method {self.name!r}: give either fuser (a late method) or window")

    @property
    def late(self) -> bool:
        """Whether it fuses the modalities' calibrated scores alone (and may be ``hybrid_late``)."""
        return self.fuser is not None

    def build(self, options: FusionOptions, built: Mapping[str, WindowFusion]) -> WindowFusion:
        """The method as the fusion stage runs it; ``built``: the methods before it in the table."""
        if self.fuser is not None:
            return OverModalities(self.fuser(options))
        if self.window is not None:
            return self.window(options, built)
        raise TypeError(f"fusion method {self.name!r} has nothing to build")


FUSION_METHODS: tuple[FusionMethod, ...] = (
    FusionMethod(
        "early", "one detector over every modality's features, its score calibrated like a modality's",
        window=lambda options, built: EarlyChannelFusion(options.fusion_decades),
    ),
    FusionMethod(
        "fisher", "Fisher's combination of the modalities' p-values (1 - calibrated); the default",
        fuser=lambda options: LateFusion("fisher", decades=options.fusion_decades),
    ),
    FusionMethod(
        "weighted", "the weighted mean of the modalities' calibrated scores",
        fuser=lambda options: LateFusion("weighted", decades=options.fusion_decades),
    ),
    FusionMethod(
        "noisy_or", "1 - prod(1 - c**8): any one strongly anomalous modality drives it",
        fuser=lambda options: LateFusion("noisy_or", decades=options.fusion_decades),
    ),
    FusionMethod(
        "stacking", "online logistic regression on the modalities' evidence, learned from the log's labels",
        fuser=lambda options: StackingFusion(MODALITIES, threshold_decades=options.stacking_threshold_decades,
                                             decades=options.fusion_decades),
    ),
    FusionMethod(
        "hybrid", "the mean of early fusion and the hybrid_late method (weight: hybrid_early_weight)",
        window=lambda options, built: HybridFusion(built["early"], built[options.hybrid_late],
                                                   options.hybrid_early_weight),
    ),
    FusionMethod(
        "learned", "a gate over the channels learned from a fleet's failures (a bundle trained with one)",
        window=lambda options, built: LearnedFusion(None, options.fusion_decades),  # the stage gives the gate
    ),
)


def fusion_names() -> tuple[str, ...]:
    """Every method's name, in table order (the order of the evaluation's rows)."""
    return tuple(m.name for m in FUSION_METHODS)


def late_names() -> tuple[str, ...]:
    """The late methods' names, in table order."""
    return tuple(m.name for m in FUSION_METHODS if m.late)


def fusion_method(name: str) -> FusionMethod:
    """The entry of ``name``; an unknown name is a :class:`ValueError` that lists the allowed ones."""
    for entry in FUSION_METHODS:
        if entry.name == name:
            return entry
    raise ValueError(f"unknown fusion method {name!r}; allowed: {', '.join(fusion_names())}")


def build_methods(options: FusionOptions) -> dict[str, WindowFusion]:
    """Every method, built in table order from one set of settings (hybrid shares its halves' instances)."""
    if options.hybrid_late not in late_names():
        raise ValueError(f"hybrid_late {options.hybrid_late!r} is not a late fusion method; "
                         f"allowed: {', '.join(late_names())}")
    built: dict[str, WindowFusion] = {}
    for entry in FUSION_METHODS:
        built[entry.name] = entry.build(options, built)
    return built


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + (", or " if len(items) > 2 else " or ") + items[-1]


def describe(late_only: bool = False) -> str:
    """The allowed names as the configuration describes them (late ones grouped unless ``late_only``).

    >>> describe(late_only=True)
    'fisher, weighted, noisy_or, or stacking'
    """
    if late_only:
        return _or_list(list(late_names()))
    others = [m.name for m in FUSION_METHODS if not m.late]
    return _or_list([f"late ({', '.join(late_names())})", *others])


def _check_table() -> None:
    names = fusion_names()
    problems = []
    if len(set(names)) != len(names):
        problems.append(f"a name is registered twice: {names}")
    if set(names) & set(MODALITIES):
        problems.append(f"a method is named like a modality (the single-modality rows): {MODALITIES}")
    if set(get_args(FusionName)) != set(names):
        problems.append(f"FusionName lists {get_args(FusionName)}, the table {names}")
    if set(get_args(LateName)) != set(late_names()):
        problems.append(f"LateName lists {get_args(LateName)}, the table's late methods {late_names()}")
    if problems:
        raise TypeError("models.fusion.registry: " + "; ".join(problems))


_check_table()
