"""The modality stages of the pipeline: one module per modality, registered in :data:`MODALITY_STAGES`.

A stage (:class:`~streams.stages.base.ModalityStage`) turns its modality's part of an aligned window into a raw
score, learns, forgets what waits to be learned and explains; :mod:`streams.stages.channel` smooths and
calibrates each channel's raw score; :mod:`streams.stages.early` fuses the modalities' features early. A new
modality is a new stage module added to :data:`MODALITY_STAGES` (and to the aligner's windows and the
``Modality`` of the score contract).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models.bundle import Bundle
from streams.model_config import ModelConfig
from streams.stages.base import ModalityStage
from streams.stages.camera import CameraStage
from streams.stages.logs import LogStage
from streams.stages.vibration import VibrationStage

#: The modality stages in scoring order, which is also the order of the channels in every score; each is built from
#: the ``[models]`` settings and the model bundle in use, if any (a stage takes from it what is its own).
MODALITY_STAGES: tuple[Callable[[ModelConfig, Bundle | None], ModalityStage[Any]], ...] = (
    VibrationStage, CameraStage, LogStage)
