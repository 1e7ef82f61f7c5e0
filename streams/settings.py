"""The settings of the stream layer: what a processor needs from the configuration, and nothing else.

Each section's type lives beside the code that reads it (``AlignerConfig`` in :mod:`streams.aligner`,
``ModelConfig`` in :mod:`streams.model_config`, ``AlertPolicyConfig`` in :mod:`streams.alerts`). The application's
composed configuration (``fusewatch.config.FusewatchConfig``) hands the stream layer these three sections as one
:class:`StreamSettings`; the stream layer never sees the rest (Kafka, webhooks, secrets).

>>> StreamSettings().aligner.window_s, StreamSettings().models.fusion
(60.0, 'fisher')
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from streams.alerts import AlertPolicyConfig
from streams.aligner import AlignerConfig
from streams.model_config import ModelConfig


class StreamSettings(BaseModel):
    """The ``[aligner]``, ``[models]`` and ``[alerts]`` sections: everything a stream processor is configured by."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    aligner: AlignerConfig = AlignerConfig()
    models: ModelConfig = ModelConfig()
    alerts: AlertPolicyConfig = AlertPolicyConfig()
