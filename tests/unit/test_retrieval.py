"""Cross-modal retrieval through the pipeline: a failure files an incident, a similar window finds it."""

from __future__ import annotations

import pickle

from fusewatch.core.events import MaintenanceLog
from streams.aligner import AlignedWindow
from streams.model_config import ModelConfig
from streams.pipeline import Pipeline

MINUTE = 60 * 10**9


def _window(asset: str, k: int, logs: list[tuple[str, str | None, int]]) -> AlignedWindow:
    entries = tuple((MaintenanceLog(asset_id=asset, ts=ts, text=text, kind=kind), 1.0)  # type: ignore[arg-type]
                    for text, kind, ts in logs)
    return AlignedWindow(asset, k * MINUTE, (k + 1) * MINUTE, (), None, entries, "watermark")


def test_a_failure_files_an_incident_that_a_similar_window_finds() -> None:
    pipeline = Pipeline(ModelConfig(warmup_windows=0))
    symptom = ("grinding noise from NDE bearing, very rough", "symptom", 5 * MINUTE)
    for k in range(10, 20):
        pipeline.process(_window("pump-01", k, [symptom]))
    failure = ("pump tripped, bearing seized", "failure", 20 * MINUTE)
    pipeline.process(_window("pump-01", 20, [symptom, failure]))
    assert len(pipeline.incidents) == 1

    bearing = pipeline.process(_window("pump-02", 30, [("rough grinding at the bearing", "symptom", 29 * MINUTE)]))
    leak = pipeline.process(_window("pump-03", 30, [("oil leak under the seal", "symptom", 29 * MINUTE)]))
    found = pipeline.similar_incidents(bearing)
    assert [m.summary["text"] for m in found] == ["pump tripped, bearing seized"]
    assert found[0].summary["asset_id"] == "pump-01" and found[0].summary["kind"] == "failure"
    assert found[0].summary["peak_fused"] >= Pipeline.INCIDENT_MIN_FUSED
    others = pipeline.similar_incidents(leak)
    assert not others or others[0].similarity < found[0].similarity
    restored = pickle.loads(pickle.dumps(pipeline.incidents))  # the memory is part of the checkpointed state
    assert [m.similarity for m in restored.query(bearing.signature())] == [m.similarity for m in found]
