"""Online stacking: late fusion whose weights are learned from the labels the maintenance log provides.

Each present modality enters as its evidence in decades, ``e = -log10(1 - calibrated)`` (capped at
``decades``; a missing modality has no evidence). The model is a logistic regression,
``P(fault ahead | e) = sigmoid(bias + sum(w_m * e_m))``, learned online by stochastic gradient descent from
labelled windows (:mod:`models.labels`: the windows before a ``failure`` or ``repair`` entry are positive,
windows that no such entry followed within the horizon are negative). Positives are rare; they may be weighted
by the running ratio of negatives to positives (capped at ``max_class_weight``), but by default they are not:
re-weighting inflates the probability that the alert thresholds read (measured with ``fusewatch evaluate
--records``, seed 0: 15 false alarms on the simulated fleet and 8 on the semi-real one with weights up to 200,
6 and 6 without).

Before any label it behaves like a fixed combination: weights ``ln 10`` and a bias of ``-threshold_decades *
ln 10`` give odds of ``10 ** (sum(e) - threshold_decades)`` — a window whose modalities together reach
``threshold_decades`` decades of surprise scores 0.5. Weights stay non-negative (more surprise never lowers
the fault probability) and are pulled gently towards that prior (L2), so a modality that has never preceded
a labelled failure fades but is not silenced. The fused score is the probability itself; contributions are
the modalities' shares of ``sum(w_m * e_m)``.

>>> stacking = StackingFusion(("vibration", "camera", "logs"))
>>> round(stacking.score_one({"vibration": 0.999, "camera": 0.9}), 3)   # 3 + 1 decades of 6: odds 1:100
0.01
>>> for _ in range(300):   # the logs have preceded failures, the camera has not
...     stacking.learn_one({"logs": 0.99, "camera": 0.5}, True)
...     stacking.learn_one({"camera": 0.99, "logs": 0.5}, False)
>>> stacking.score_one({"logs": 0.99}) > 0.5 > stacking.score_one({"camera": 0.99})
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from models.base import FusionResult
from models.fusion.scale import spread

_LN10 = math.log(10.0)


class StackingFusion:
    """Online logistic-regression fusion of calibrated modality scores, trained from log-derived labels.

    Parameters
    ----------
    modalities
        The modalities it may see (unknown ones are ignored).
    threshold_decades
        Total surprise (decades) at which the prior model gives 0.5.
    learning_rate
        Step size of the stochastic gradient descent.
    l2
        Pull of each weight (and the bias) towards its prior value, per step.
    decades
        Evidence per modality is capped at this many decades.
    max_class_weight
        Upper bound of the weight of a positive window (the negative-to-positive ratio); 1 = no re-weighting.
    """

    def __init__(
        self,
        modalities: Sequence[str],
        threshold_decades: float = 6.0,
        learning_rate: float = 0.01,
        l2: float = 1e-4,
        decades: float = 10.0,
        max_class_weight: float = 1.0,
    ) -> None:
        self.modalities = tuple(modalities)
        self.learning_rate = learning_rate
        self.l2 = l2
        self.decades = decades
        self.max_class_weight = max_class_weight
        self.prior_bias = -threshold_decades * _LN10
        self.bias = self.prior_bias
        self.weights = dict.fromkeys(self.modalities, _LN10)
        self.positives = 0
        self.negatives = 0

    def _evidence(self, x: Mapping[str, float]) -> dict[str, float]:
        evidence = {}
        for modality, calibrated in x.items():
            if modality in self.weights:
                p_value = max(1.0 - min(max(float(calibrated), 0.0), 1.0), 10.0**-self.decades)
                evidence[modality] = -math.log10(p_value)
        return evidence

    def _logit(self, evidence: Mapping[str, float]) -> float:
        return self.bias + sum(self.weights[m] * e for m, e in evidence.items())

    def learn_one(self, x: Mapping[str, float], y: bool | None = None) -> None:
        """One gradient step on a labelled window; unlabelled windows (``y is None``) teach nothing."""
        if y is None:
            return
        if y:
            self.positives += 1
        else:
            self.negatives += 1
        evidence = self._evidence(x)
        weight = min(self.max_class_weight, max(1.0, self.negatives / max(self.positives, 1))) if y else 1.0
        probability = _sigmoid(self._logit(evidence))
        gradient = weight * (probability - (1.0 if y else 0.0))
        step = self.learning_rate
        self.bias -= step * (gradient + self.l2 * (self.bias - self.prior_bias))
        for modality, value in evidence.items():
            w = self.weights[modality]
            self.weights[modality] = max(0.0, w - step * (gradient * value + self.l2 * (w - _LN10)))

    def fuse_one(self, x: Mapping[str, float]) -> FusionResult:
        """The probability of a fault ahead, with the modalities' shares of the weighted evidence."""
        evidence = self._evidence(x)
        if not evidence:
            return FusionResult(0.0, {}, None, 0.0)
        fused = _sigmoid(self._logit(evidence))
        weighted = {m: self.weights[m] * e for m, e in evidence.items()}
        leading = max(weighted, key=lambda m: weighted[m])
        return FusionResult(fused, spread(fused, weighted), leading, fused)

    def score_one(self, x: Mapping[str, float]) -> float:
        """The fused score of ``x``."""
        return self.fuse_one(x).fused


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
