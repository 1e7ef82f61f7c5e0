"""The ``[influx]`` section: where the sink and the demo write, and the credentials they use.

The password (InfluxDB 1.x with ``auth-enabled``) and the token (2.x/3.x) come from the environment
(``FUSEWATCH_INFLUX__PASSWORD``, ``FUSEWATCH_INFLUX__TOKEN``) or from files (``password_file``, ``token_file``),
never from the command line in production; they are never printed.

>>> settings = InfluxSettings(url="http://127.0.0.1:8086", username="fusewatch", password="pw")
>>> "pw" in repr(settings), "password=SecretStr('**********')" in repr(settings)
(False, True)
>>> settings.credentials()
('fusewatch', 'pw', None)
>>> InfluxSettings(password="pw")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for InfluxSettings
  Value error, a password needs a username ...
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from fusewatch.core.secrets import check_secret_pair, read_secret


class InfluxSettings(BaseModel):
    """The InfluxDB fusewatch writes to (``--influx`` and the other ``--influx-*`` flags override it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = Field(None, description="http(s)://HOST:PORT of InfluxDB (v1 or v2 API, detected)")
    database: str = Field("fusewatch", description="database (v1, created if missing and allowed) or bucket (v2)")
    org: str | None = Field(None, description="organisation (v2)")
    username: str = Field("", description="user (v1 with auth-enabled)")
    password: SecretStr | None = Field(None, description="password of username: use FUSEWATCH_INFLUX__PASSWORD")
    password_file: Path | None = Field(None, description="file holding the password")
    token: SecretStr | None = Field(None, description="API token (v2): use FUSEWATCH_INFLUX__TOKEN")
    token_file: Path | None = Field(None, description="file holding the API token")

    @model_validator(mode="after")
    def _check(self) -> InfluxSettings:
        check_secret_pair(self.password, self.password_file, "influx.password")
        check_secret_pair(self.token, self.token_file, "influx.token")
        if (self.password or self.password_file) and not self.username:
            raise ValueError("a password needs a username (influx.username)")
        return self

    def credentials(self) -> tuple[str | None, str | None, str | None]:
        """``(username, password, token)``, the secrets read from their files now."""
        return (self.username or None, read_secret(self.password, self.password_file, "influx.password"),
                read_secret(self.token, self.token_file, "influx.token"))
