"""How a worker runs: :class:`WorkerOptions`, and the settings of its faust app from the ``[kafka]`` section.

>>> settings = faust_app_settings(KafkaSettings(), WorkerOptions(workdir=Path("w")))
>>> settings["broker"], settings["datadir"], settings["broker_credentials"]
(['kafka://127.0.0.1:9092'], 'w/faust', None)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from fusewatch.core.assets import AssetRegistry
from fusewatch.core.kafka_settings import KafkaSettings


@dataclass
class WorkerOptions:
    """How one worker runs (the rest comes from the configuration)."""

    app_id: str = "fusewatch"
    run_id: str = "live"
    workdir: Path = Path("fusewatch-worker")
    checkpoint_every: int = 2000
    max_batch_windows: int = 2000  # windows scored as one batch at most (a longer run of messages is cut)
    max_batch_age_s: float = 0.25  # a batch ends this long after it was opened at the latest
    batch_grace_s: float = 0.005  # ... and once the agent has had no message at hand this long
    checkpoint_interval_s: float = 5.0
    # however little input came, a checkpoint at least this often: at plant speed a partition's input reaches the
    # size of its state (~1.2 MB pickled per warmed asset, ~1.6 kB/s of input per asset) after about 12 minutes,
    # so a shorter bound would make the state topic carry more bytes than the inputs (docs/production.md)
    checkpoint_max_interval_s: float = 1800.0
    web_port: int | None = None  # faust's web view (health, lag) when set
    report_interval_s: float = 10.0  # a progress line in the log
    registry: AssetRegistry | None = None  # when given: bearing frequencies, and other assets are dead letters
    config_digest: str = ""  # of the configuration the checkpoints belong to; another digest's are not restored



def faust_credentials(settings: KafkaSettings) -> faust.types.auth.CredentialsT | None:
    """The ``[kafka]`` security settings as faust's broker credentials (``None`` for PLAINTEXT)."""
    if settings.sasl:
        return faust.SASLCredentials(username=settings.sasl_username, password=settings.password(),
                                     mechanism=settings.sasl_mechanism, ssl_context=settings.ssl_context())
    context = settings.ssl_context()
    return None if context is None else faust.SSLCredentials(context)


def faust_app_settings(settings: KafkaSettings, options: WorkerOptions) -> dict[str, Any]:
    """The keyword arguments of the worker's ``faust.App`` (all but the app id, ``options.app_id``): one
    definition for the worker and for the benchmarks that read the topics the way it does."""
    return {
        "broker": [f"kafka://{server}" for server in settings.servers()],
        "broker_credentials": faust_credentials(settings),
        "store": "memory://",
        "datadir": str(options.workdir / "faust"),
        "topic_partitions": settings.partitions,
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "stream_wait_empty": False,  # held (unacknowledged) messages must not block a rebalance
        "producer_acks": -1,
        "producer_max_request_size": settings.max_message_bytes,
        "consumer_max_fetch_size": settings.max_message_bytes,
        "web_enabled": options.web_port is not None,
        "web_port": options.web_port or 6066,
        "web_bind": "127.0.0.1",
        "broker_session_timeout": 10.0,  # a killed worker's partitions move after 10 s, not 60
        "broker_heartbeat_interval": 2.0,
        "broker_request_timeout": max(settings.timeout_s, 40.0),
    }
