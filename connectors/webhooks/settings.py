"""The ``[[webhooks]]`` entries of the configuration: where alert transitions are delivered.

>>> hook = WebhookSettings(url="https://hooks.example.com/fusewatch", secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
>>> hook.min_severity, hook.allow_private, "MfKQ" in repr(hook)
('warning', False, False)

In production the secret comes from a file (``secret_file``, e.g. a mounted container secret), read when the
configuration is loaded:

>>> WebhookSettings(url="https://hooks.example.com/fusewatch")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for WebhookSettings
  Value error, give secret_file (or secret)...
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.webhooks.delivery import Endpoint
from connectors.webhooks.signing import WebhookSecret
from fusewatch.core.secrets import check_secret_pair, read_secret


class WebhookSettings(BaseModel):
    """One receiver of alert transitions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(description="http(s) URL the signed alert JSON is POSTed to")
    secret: SecretStr | None = Field(None, description="signing secret, whsec_<base64> (Standard Webhooks)")
    secret_file: Path | None = Field(None, description="file holding the signing secret")
    min_severity: Literal["warning", "critical"] = Field("warning", description="least severe alert sent here")
    allow_private: bool = Field(False, description="allow loopback/private targets (e.g. a receiver on this host)")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _check_secret(self) -> WebhookSettings:
        check_secret_pair(self.secret, self.secret_file, "webhooks.secret")
        if self.secret is None and self.secret_file is None:
            raise ValueError("give secret_file (or secret): the signing secret, whsec_<base64>")
        self._secret()  # raises ValueError with the reason
        return self

    def _secret(self) -> WebhookSecret:
        return WebhookSecret.parse(read_secret(self.secret, self.secret_file, "webhooks.secret") or "")

    def endpoint(self) -> Endpoint:
        """The delivery endpoint these settings describe."""
        return Endpoint(self.url, self._secret(), self.min_severity, self.allow_private)
