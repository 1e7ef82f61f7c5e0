"""``fusewatch replay``: history (a recording or a Kafka time range) back into input topics, in event time.

Every message keeps its key, bytes, record timestamp (= event time) and partition, and the messages of each
partition keep their order, so a worker sees what the plant sent. ``into="live"`` writes to the deployment's
own input topics (e.g. to feed a new deployment from a recording); ``into="backtest"`` writes to topics of their
own, ``<prefix>backtest.<run id>.*``, which the live workers never read: a worker started on that prefix with the
run id scores them without touching live state or live scores (docs/replay.md).
"""

from __future__ import annotations

from typing import Literal

from connectors.kafka.admin import create_topics, topic_names
from connectors.kafka.history import KafkaHistory
from connectors.kafka.pacing import SendResult
from connectors.kafka.producer import EventProducer
from connectors.kafka.publish import publish
from connectors.sources.base import History
from fusewatch.core.errors import FusewatchError
from fusewatch.core.kafka_settings import KafkaSettings

Target = Literal["live", "backtest"]


def target_settings(settings: KafkaSettings, into: Target, run_id: str) -> KafkaSettings:
    """The Kafka settings of the topics a replay writes to."""
    if into == "live":
        return settings
    return settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}backtest.{run_id}."})


def replay(history: History, settings: KafkaSettings, into: Target, run_id: str, speed: float | None,
           progress: bool = True) -> SendResult:
    """Publish ``history`` into the target topics (created when missing), paced at ``speed`` x plant time."""
    target = target_settings(settings, into, run_id)
    if isinstance(history, KafkaHistory) and history.settings.topic_prefix == target.topic_prefix:
        raise FusewatchError("replaying the live topics into themselves would duplicate the range; use"
                             " --into backtest")
    create_topics(target, topic_names(target))
    with EventProducer(target) as producer:
        return publish(history, producer, speed, total=history.count(), progress=progress, desc="replaying")
