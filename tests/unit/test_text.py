"""Maintenance-log text: shorthand, typos, negation, and the online severity model."""

from __future__ import annotations

import pytest

from models.text import LogSeverityModel, infer_kind, lexicon_severity, normalize_log_text


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("P-03 NDE brg v noisy", "pump 03 non drive end bearing very noisy"),
        ("mtr 2 temp hi, insul smell", "motor 2 temperature high insulation smell"),
        ("bearnig vibraton", "bearing vibration"),
        ("Lubed DE brgs, chkd cplg", "lubricated drive end bearings checked coupling"),
    ],
)
def test_shorthand_and_typos_are_normalised(raw: str, normalized: str) -> None:
    assert normalize_log_text(raw) == normalized


def test_negated_symptoms_do_not_count() -> None:
    assert lexicon_severity(normalize_log_text("no leaks, no abnormal noise")) == 0.0
    assert lexicon_severity(normalize_log_text("leaks at gland")) > 0.5


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("replaced DE brg", "repair"),
        ("P-03 tripped on overload", "failure"),
        ("grinding noise from NDE", "symptom"),
        ("routine insp, all ok", "inspection"),
        ("spoke to operator about schedule", "note"),
    ],
)
def test_kind_is_inferred(text: str, kind: str) -> None:
    assert infer_kind(text) == kind


def test_the_model_learns_vocabulary_the_lexicon_lacks() -> None:
    model = LogSeverityModel(trust_after=20, max_model_weight=0.8)
    before = model.score_one("cavitation at impeller eye")
    for _ in range(40):
        model.learn_one("cavitation at impeller eye", "symptom")
        model.learn_one("walkdown done, readings logged", "inspection")
    assert model.score_one("cavitation at impeller eye") > before + 0.3
    assert model.score_one("walkdown done, readings logged") < 0.3
    model.learn_one("no kind given", None)
    assert model.positives == model.negatives == 40


def test_typo_repair_only_undoes_one_letter_slips() -> None:
    assert normalize_log_text("bearnig noisy, vibbration hi") == "bearing noisy vibration high"
    assert normalize_log_text("temps normal") == "temperature normal"  # not "abnormal"
    assert "replaced" not in normalize_log_text("seal leaking steady, drip tray placed")
    assert infer_kind("pump #3 seal leaking steady, drip tray placed") != "repair"
