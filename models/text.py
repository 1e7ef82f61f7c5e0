"""Maintenance logs: normalising technician shorthand, and an online symptom-severity model.

Technicians write ``"P-03 NDE brg v noisy, lube chkd"``. :func:`normalize_log_text` lower-cases, splits asset
tags, expands shorthand and repairs close misspellings of the domain vocabulary. :class:`LogSeverityModel`
scores a note's symptom severity in [0, 1]: a negation-aware lexicon gives a prior from the first note on, and
an online logistic regression over word uni- and bigrams (river) learns from entries whose ``kind`` the
technician set, taking over as labelled entries accumulate.

>>> normalize_log_text("P-03 NDE brg v noisy, lube chkd")
'pump 03 non drive end bearing very noisy lubrication checked'
>>> model = LogSeverityModel()
>>> model.score_one("slight rattle on pump 3 NDE bearing") > 0.5 > model.score_one("routine insp, all ok, no leaks")
True
>>> infer_kind("replaced DE brg, realigned coupling")
'repair'

Real work orders (the NIST excavator orders, docs/datasets.md) add their own shorthand, expanded from
:data:`WORK_ORDER_SHORTHAND`, and :class:`WorkOrderClassifier` learns labels of such texts online.

>>> normalize_log_text("R/H ENG HYD LEAK, LIGHT U/S")
'right hand engine hydraulic leak light unserviceable'
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from river import compose, feature_extraction, linear_model, multiclass, optim

TEXT_MODEL_FORMAT = "log-severity-1"
"""The layout of :meth:`LogSeverityModel.to_json` (a bundle's fleet text model)."""
TEXT_MODEL_FILE = "text-model.json"
"""The fleet text model's file in a model bundle."""

SHORTHAND: dict[str, str] = {
    "brg": "bearing", "brgs": "bearings", "bearng": "bearing", "nde": "non drive end", "de": "drive end",
    "vib": "vibration", "vibs": "vibration", "vibn": "vibration", "vibe": "vibration", "lube": "lubrication",
    "lubed": "lubricated", "greased": "lubricated", "mtr": "motor", "chkd": "checked", "chk": "check",
    "abt": "about", "temp": "temperature", "temps": "temperature", "insul": "insulation", "insp": "inspection",
    "v": "very", "sl": "slight", "slt": "slight", "w": "with", "wo": "without", "u/s": "unserviceable",
    "p": "pump", "m": "motor", "ok": "ok", "hi": "high", "lo": "low", "approx": "about", "rplcd": "replaced",
    "repl": "replaced", "cplg": "coupling", "mech": "mechanical", "oh": "overhaul", "amps": "current",
}
SYMPTOM_WEIGHTS: dict[str, float] = {
    "noisy": 0.7, "noise": 0.6, "rattle": 0.7, "rattling": 0.7, "grinding": 0.9, "squeal": 0.7, "squealing": 0.7,
    "knocking": 0.8, "rumble": 0.6, "rough": 0.6, "hot": 0.7, "overheating": 0.85, "smell": 0.7, "smells": 0.7,
    "burning": 0.9, "smoke": 0.95, "leak": 0.7, "leaking": 0.75, "leaks": 0.7, "drip": 0.6, "dripping": 0.65,
    "puddle": 0.7, "weeping": 0.55, "oil": 0.35, "stain": 0.5, "seized": 1.0, "tripped": 0.95, "failed": 1.0,
    "failure": 1.0, "broken": 0.95, "crack": 0.85, "cracked": 0.85, "loose": 0.6, "worn": 0.6, "excessive": 0.6,
    "abnormal": 0.7, "unusual": 0.6, "discoloured": 0.6, "discolored": 0.6, "hum": 0.5, "humming": 0.5,
    "vibration": 0.45, "high": 0.3, "unserviceable": 0.9, "scorched": 0.85, "sparking": 0.9, "insulation": 0.4,
}
NEGATIONS = frozenset({"no", "not", "nil", "without", "none", "normal", "ok"})
ROUTINE = frozenset({"routine", "checked", "inspection", "lubricated", "lubrication", "cleaned", "good", "fine"})
VOCABULARY = sorted(set(SHORTHAND.values()) | set(SYMPTOM_WEIGHTS) | ROUTINE | {"bearing", "pump", "motor", "seal"})
WORK_ORDER_SHORTHAND: dict[str, str] = {
    "l/h": "left hand", "lh": "left hand", "lhs": "left hand side", "r/h": "right hand", "rh": "right hand",
    "rhs": "right hand side", "hyd": "hydraulic", "eng": "engine", "engs": "engines", "cyl": "cylinder",
    "cyls": "cylinders", "a/c": "air conditioning", "aircon": "air conditioning", "aircons": "air conditioning",
    "aircond": "air conditioning", "c/o": "changeout", "c/out": "changeout", "r/r": "remove and replace",
    "o/h": "overhaul", "acc": "accident", "warr": "warranty", "hrs": "hours", "assy": "assembly",
    "bkt": "bucket", "blwn": "blown", "adj": "adjust", "f/d": "final drive", "wont": "will not",
    "won": "will not", "instalation": "installation",
    # real words the typo repair would otherwise turn into the simulated plant's vocabulary
    "light": "light", "stripped": "stripped", "riding": "riding", "wearing": "wearing", "every": "every",
    "isolation": "isolation", "dropping": "dropping", "tripping": "tripping", "lacking": "lacking",
    "cleaner": "cleaner", "cleaners": "cleaners", "rating": "rating",
}
"""Shorthand of real work orders ("R/H ENG", "HYD", "A/C", "C/OUT"). It never overrides :data:`SHORTHAND` and
stays out of :data:`VOCABULARY`, so the simulated plant's texts normalise exactly as before."""
_EXPANSIONS = {**WORK_ORDER_SHORTHAND, **SHORTHAND}
_TAG = re.compile(r"\b([pm])-?(\d+)\b")
_TOKEN = re.compile(r"[a-z]+(?:/[a-z]+)?|\d+")
_LOG_KIND_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("repair", frozenset({"replaced", "repaired", "rebuilt", "changed", "overhaul", "rewound", "fitted"})),
    ("failure", frozenset({"tripped", "seized", "failed", "failure", "broken", "unserviceable"})),
)


@lru_cache(maxsize=4096)
def _correct(token: str) -> str:
    if token in _EXPANSIONS or token in SYMPTOM_WEIGHTS or len(token) < 5:
        return _EXPANSIONS.get(token, token)
    # a typo swaps, drops or doubles one letter: a "match" two letters longer or shorter is another word
    # ("placed" is not a misspelt "replaced", and reading it as one turned a leak report into a repair)
    matches = difflib.get_close_matches(token, VOCABULARY, n=3, cutoff=0.84)
    return next((m for m in matches if abs(len(m) - len(token)) <= 1), token)


def normalize_log_text(text: str) -> str:
    """Lower-case, split asset tags (``P-03`` → ``pump 03``), expand shorthand and fix close misspellings."""
    lowered = _TAG.sub(lambda m: f"{'pump' if m.group(1) == 'p' else 'motor'} {m.group(2)}", text.lower())
    return " ".join(_correct(token) for token in _TOKEN.findall(lowered))


def lexicon_severity(normalized: str) -> float:
    """Noisy-or of the symptom words present, ignoring those negated by one of the two words before them."""
    tokens = normalized.split()
    survival = 1.0
    for i, token in enumerate(tokens):
        weight = SYMPTOM_WEIGHTS.get(token)
        if weight is None or NEGATIONS.intersection(tokens[max(0, i - 2) : i]):
            continue
        survival *= 1.0 - weight
    return 1.0 - survival


def infer_kind(text: str) -> str:
    """Guess a log's kind from its words when the technician left it empty."""
    normalized = normalize_log_text(text)
    tokens = set(normalized.split())
    for kind, words in _LOG_KIND_WORDS:
        if tokens & words:
            return kind
    if lexicon_severity(normalized) >= 0.5:
        return "symptom"
    return "inspection" if tokens & ROUTINE else "note"


def effective_kind(text: str, kind: str | None) -> str:
    """The technician's ``kind`` when given, otherwise the inferred one.

    >>> effective_kind("replaced brg", None), effective_kind("replaced brg", "note")
    ('repair', 'note')
    """
    return kind or infer_kind(text)


class LogSeverityModel:
    """Online symptom-severity model for maintenance-log text (one per fleet: the language is shared).

    ``learn_one(text, kind)`` learns from entries labelled by the technician: ``symptom`` and ``failure`` are
    positives, ``inspection``, ``note`` and ``repair`` negatives. ``score_one(text)`` blends the lexicon prior
    with the learned probability; the learned part's weight grows to ``max_model_weight`` after
    ``trust_after`` labelled entries of both classes.
    """

    POSITIVE = frozenset({"symptom", "failure"})

    def __init__(self, trust_after: int = 50, max_model_weight: float = 0.5, learning_rate: float = 0.2) -> None:
        self.trust_after = trust_after
        self.max_model_weight = max_model_weight
        self.classifier = compose.Pipeline(
            feature_extraction.BagOfWords(ngram_range=(1, 2)),
            linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate)),
        )
        self.positives = 0
        self.negatives = 0

    def learn_one(self, text: str, kind: str | None) -> None:
        """Learn from one entry whose ``kind`` the technician set; entries without a kind are ignored."""
        if kind is None:
            return
        label = kind in self.POSITIVE
        self.classifier.learn_one(normalize_log_text(text), label)  # type: ignore[arg-type]  # BagOfWords takes str
        if label:
            self.positives += 1
        else:
            self.negatives += 1

    def to_json(self) -> dict[str, Any]:
        """The model as JSON-able data (a bundle's ``text-model.json``): :meth:`from_json` rebuilds a model that
        scores and goes on learning exactly as this one. Bigram features are two-item lists.

        >>> import json
        >>> model = LogSeverityModel(trust_after=2)
        >>> for text, kind in [("loud grinding noise", "symptom"), ("replaced bearing", "repair")] * 3:
        ...     model.learn_one(text, kind)
        >>> copy = LogSeverityModel.from_json(json.loads(json.dumps(model.to_json())))
        >>> copy.score_one("grinding noise again") == model.score_one("grinding noise again")
        True
        """
        regression = self.classifier["LogisticRegression"]
        return {
            "format": TEXT_MODEL_FORMAT,
            "trust_after": self.trust_after, "max_model_weight": self.max_model_weight,
            "learning_rate": regression.optimizer.lr.learning_rate,
            "positives": self.positives, "negatives": self.negatives,
            "iterations": regression.optimizer.n_iterations, "intercept": regression.intercept,
            "weights": [[list(key) if isinstance(key, tuple) else key, weight]
                        for key, weight in dict(regression._weights).items()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogSeverityModel:
        """The model :meth:`to_json` described; ``ValueError`` names what is missing or malformed."""
        if data.get("format") != TEXT_MODEL_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {TEXT_MODEL_FORMAT!r}")
        try:
            model = cls(int(data["trust_after"]), float(data["max_model_weight"]), float(data["learning_rate"]))
            model.positives, model.negatives = int(data["positives"]), int(data["negatives"])
            regression = model.classifier["LogisticRegression"]
            regression.optimizer.n_iterations = int(data["iterations"])
            regression.intercept = float(data["intercept"])
            for key, weight in data["weights"]:
                regression._weights[tuple(key) if isinstance(key, list) else str(key)] = float(weight)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a text model ({type(exc).__name__}: {exc})") from None
        return model

    def score_one(self, text: str) -> float:
        """Symptom severity in [0, 1] of one entry."""
        normalized = normalize_log_text(text)
        prior = lexicon_severity(normalized)
        trust = self.max_model_weight * min(1.0, min(self.positives, self.negatives) * 2 / self.trust_after)
        if trust <= 0.0:
            return prior
        learned = float(self.classifier.predict_proba_one(normalized).get(True, 0.0))  # type: ignore[arg-type]
        value = (1.0 - trust) * prior + trust * learned
        return 0.0 if math.isnan(value) else min(max(value, 0.0), 1.0)


class WorkOrderClassifier:
    """Online classifier of maintenance-log text: which subsystem, routine or failure, ... (one per label set).

    Uni- and bigrams of :func:`normalize_log_text` feed one online logistic regression per label seen
    (river's one-vs-rest, plain SGD): deterministic, picklable, a new label joins whenever it first appears.
    ``score_one`` is the probability of the ``positive`` label, a "failure-ness" when the labels are
    ``routine``/``failure``.

    >>> model = WorkOrderClassifier(positive="failure")
    >>> model.predict_one("hyd hose blown"), model.score_one("hyd hose blown")
    (None, 0.0)
    >>> for _ in range(3):
    ...     model.learn_one("R/H hyd hose blown", "failure")
    ...     model.learn_one("service air con", "routine")
    >>> model.predict_one("hyd hose blwn on boom"), model.score_one("hyd hose blown") > 0.5
    ('failure', True)
    """

    def __init__(self, positive: str = "failure", learning_rate: float = 0.5) -> None:
        self.positive = positive
        self.learning_rate = learning_rate
        self.classifier = compose.Pipeline(
            feature_extraction.BagOfWords(ngram_range=(1, 2)),
            multiclass.OneVsRestClassifier(linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate))),
        )
        self.label_counts: Counter[str] = Counter()

    def learn_one(self, text: str, label: str) -> None:
        """Learn that ``text`` carries ``label``."""
        self.classifier.learn_one(normalize_log_text(text), label)  # type: ignore[arg-type]  # BagOfWords takes str
        self.label_counts[label] += 1

    def predict_proba_one(self, text: str) -> dict[str, float]:
        """The probability of each label learned so far (empty before the first)."""
        if not self.label_counts:
            return {}
        proba = self.classifier.predict_proba_one(normalize_log_text(text))  # type: ignore[arg-type]
        return {str(label): 0.0 if math.isnan(p) else float(p) for label, p in proba.items()}

    def predict_one(self, text: str) -> str | None:
        """The most probable label (ties to the first in sorted order); ``None`` before any label is learned."""
        proba = self.predict_proba_one(text)
        return max(sorted(proba), key=proba.__getitem__) if proba else None

    def score_one(self, text: str) -> float:
        """The probability of the ``positive`` label (0 until it has been learned)."""
        return self.predict_proba_one(text).get(self.positive, 0.0)
