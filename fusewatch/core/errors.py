"""The one exception tree of fusewatch.

Every error fusewatch raises on purpose derives from :class:`FusewatchError`. Errors of the
libraries underneath are translated where they are caught, with ``raise ... from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class FusewatchError(Exception):
    """Base class of every error raised by fusewatch."""


class InvalidEventError(FusewatchError, ValueError):
    """A message or event failed validation or decoding.

    ``field`` names the offending field (``"<message>"`` when the whole message is unreadable)
    and ``reason`` says what is wrong with it.

    >>> err = InvalidEventError("samples", "contains NaN or infinity")
    >>> str(err)
    'samples: contains NaN or infinity'
    >>> err.field, err.reason
    ('samples', 'contains NaN or infinity')
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ConfigError(FusewatchError, ValueError):
    """A configuration file or value is invalid; the message names the key and the problem."""


@dataclass(frozen=True)
class Problem:
    """One problem of a plant file: where (line 0 when unknown) and why."""

    file: Path
    line: int
    key: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.key}: {self.reason}" if self.key else f"{where}: {self.reason}"


class PlantFileError(ConfigError):
    """A plant file (fusewatch/core/plant.py) that cannot be used; :attr:`problems` lists every problem found."""

    def __init__(self, file: Path, problems: list[Problem]) -> None:
        self.problems = problems
        lines = [f"{file}: {len(problems)} problem{'s' if len(problems) != 1 else ''}"]
        super().__init__("\n  ".join(lines + [str(problem) for problem in problems]))


class ImportProblemError(FusewatchError):
    """A problem in an input file of ``fusewatch import`` when it is strict, or a file that cannot be imported."""


class ServiceUnavailableError(FusewatchError):
    """A service fusewatch needs (the Kafka broker, InfluxDB) did not answer within the configured time."""


class TopicMismatchError(FusewatchError):
    """A Kafka topic exists but not as fusewatch needs it (missing, or with the wrong partition count)."""


class DeliveryError(FusewatchError):
    """Messages could not be delivered to Kafka; the message says how many and why."""


class DatasetFetchError(FusewatchError):
    """A data set could not be downloaded, or its file does not match the pinned checksum."""


class IncompatibleStateError(FusewatchError):
    """A checkpoint or model state was written by another version of fusewatch (or is not one): not restored."""


class WorkerFailedError(FusewatchError):
    """A worker process of the embedded runner failed or died; the message says which and why."""


class RecordingError(FusewatchError):
    """A recording that cannot be written or read as it is: the message names the file and the problem."""


class IncompleteRunError(FusewatchError):
    """A backtest run or its report directory is not complete (the message names what is missing)."""


class BlockedTargetError(FusewatchError):
    """A webhook URL that fusewatch refuses to call, with the reason."""


class SignatureError(FusewatchError):
    """A webhook delivery whose headers or signature do not verify."""


class GrafanaPushError(FusewatchError):
    """Grafana refused a request or could not be reached; ``status`` is the HTTP status (``None``: no answer)."""

    def __init__(self, message: str, url: str, status: int | None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class GrafanaUnreachableError(GrafanaPushError, ServiceUnavailableError):
    """Grafana did not answer at all (connection refused, DNS, timeout)."""


class SinkBackpressureError(FusewatchError):
    """A sink cannot take writes now: its target asked to slow down (HTTP 429) or is unavailable.

    Nothing was dropped: the sink keeps what it buffered. The caller pauses (stops reading input, commits no
    offsets), waits (``retry_after_s``: the target's hint, e.g. its ``Retry-After``) and flushes again
    (docs/sinks.md).

    >>> error = SinkUnavailableError("InfluxDB at http://db:8086 is unreachable", retry_after_s=2.0)
    >>> isinstance(error, SinkBackpressureError), error.retry_after_s
    (True, 2.0)
    """

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SinkUnavailableError(SinkBackpressureError):
    """A sink's target is down or unreachable (refused connection, 5xx, a locked database): back-pressure too."""


class SinkRejectedError(FusewatchError):
    """A sink refused the data itself (bad request): retrying the same points cannot succeed."""


class AccessDeniedError(ServiceUnavailableError):
    """A service answered but refused fusewatch: wrong credentials, an untrusted certificate, a missing ACL.

    Retrying does not help; the message names the setting to check."""


class BundleError(FusewatchError):
    """A model bundle (models/bundle.py) that cannot be written or used: missing, damaged, or not a bundle.

    >>> str(BundleError(Path("bundles/pumps"), "manifest.json: not valid JSON"))
    'bundle bundles/pumps: manifest.json: not valid JSON'
    """

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"bundle {path}: {problem}")
        self.path = path
        self.problem = problem
