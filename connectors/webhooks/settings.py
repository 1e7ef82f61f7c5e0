"""The ``[[webhooks]]`` entries of the configuration: where alert transitions are delivered.

>>> hook = WebhookSettings(url="https://hooks.example.com/fusewatch", secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
>>> hook.min_severity, hook.allow_private, "MfKQ" in repr(hook)
('warning', False, False)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.webhooks.delivery import Endpoint
from connectors.webhooks.signing import WebhookSecret


class WebhookSettings(BaseModel):
    """One receiver of alert transitions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(description="http(s) URL the signed alert JSON is POSTed to")
    secret: SecretStr = Field(description="signing secret, whsec_<base64> (Standard Webhooks)")
    min_severity: Literal["warning", "critical"] = Field("warning", description="least severe alert sent here")
    allow_private: bool = Field(False, description="allow loopback/private targets (e.g. a receiver on this host)")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: SecretStr) -> SecretStr:
        WebhookSecret.parse(value.get_secret_value())  # raises ValueError with the reason
        return value

    def endpoint(self) -> Endpoint:
        """The delivery endpoint these settings describe."""
        return Endpoint(self.url, WebhookSecret.parse(self.secret.get_secret_value()), self.min_severity,
                        self.allow_private)
