"""Online models: per-modality detectors, calibration and fusion.

This package knows nothing of Kafka, Faust, sinks or event contracts: numpy arrays and dicts in,
scores out.
"""
