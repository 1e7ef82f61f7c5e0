"""fusewatch's one configuration: a TOML file, overridden by ``FUSEWATCH_*`` environment variables.

Sections: ``[aligner]``, ``[models]``, ``[alerts]``, ``[kafka]``; see ``deploy/config/fusewatch.example.toml``. A nested
setting is overridden from the environment with a double underscore, e.g. ``FUSEWATCH_ALERTS__OPEN_K=4``.
A bad file or value raises :class:`~fusewatch.core.errors.ConfigError` naming the key and the problem:

>>> load_config(None).aligner.window_s
60.0
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "bad.toml"
>>> _ = path.write_text("[alerts]\\nopen_k = 'six'\\n")
>>> load_config(path)
Traceback (most recent call last):
...
fusewatch.core.errors.ConfigError: ...bad.toml: alerts.open_k: Input should be a valid integer, unable to parse ...
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connectors.sinks.influx.settings import InfluxSettings
from connectors.webhooks.settings import WebhookSettings
from fusewatch.core.errors import ConfigError
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.secrets import SHOWN
from streams.alerts import AlertPolicyConfig
from streams.aligner import AlignerConfig
from streams.model_config import ModelConfig
from streams.settings import StreamSettings


class FusewatchConfig(BaseSettings):
    """All settings of a fusewatch process."""

    model_config = SettingsConfigDict(
        env_prefix="FUSEWATCH_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    aligner: AlignerConfig = AlignerConfig()
    models: ModelConfig = ModelConfig()
    alerts: AlertPolicyConfig = AlertPolicyConfig()
    kafka: KafkaSettings = KafkaSettings()
    influx: InfluxSettings = InfluxSettings()
    webhooks: list[WebhookSettings] = []

    @property
    def streams(self) -> StreamSettings:
        """The sections the stream layer reads (aligner, models, alerts), for a processor or a worker."""
        return StreamSettings(aligner=self.aligner, models=self.models, alerts=self.alerts)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment overrides the file (which arrives as init arguments)."""
        return (env_settings, init_settings)


def load_config(path: str | Path | None) -> FusewatchConfig:
    """Read ``path`` (TOML; ``None`` for defaults) and apply the environment over it."""
    data: dict[str, Any] = {}
    where = "configuration"
    if path is not None:
        where = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{where}: file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    try:
        return FusewatchConfig(**data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown setting"
        raise ConfigError(f"{where}: {key}: {message}") from None


def to_toml(config: FusewatchConfig) -> str:
    """The configuration as a commented TOML file that ``load_config`` reads back unchanged."""
    lines = [
        "# fusewatch configuration. Every value can be overridden from the environment,",
        "# e.g. FUSEWATCH_ALERTS__OPEN_K=4. See docs/configuration.md.",
    ]
    for section in ("aligner", "models", "alerts", "kafka", "influx"):
        model = getattr(config, section)
        lines += ["", f"[{section}]"]
        for name, field in type(model).model_fields.items():
            lines.append(_toml_line(name, getattr(model, name), field.description or ""))
    lines += ["", "# Alert webhooks (docs/webhooks.md), one [[webhooks]] table each; secrets are not printed."]
    for hook in config.webhooks:
        private = "true" if hook.allow_private else "false"
        secret = (f"secret_file = {json.dumps(str(hook.secret_file))}" if hook.secret_file is not None
                  else f'# secret = "{SHOWN}"  # set, not shown: give it as secret_file')
        lines += ["", "[[webhooks]]", f'url = "{hook.url}"', secret,
                  f'min_severity = "{hook.min_severity}"', f"allow_private = {private}"]
    if not config.webhooks:
        lines += ["# [[webhooks]]", '# url = "https://hooks.example.com/fusewatch"',
                  '# secret_file = "/run/secrets/fusewatch-webhook"  # holds whsec_<base64>',
                  '# min_severity = "warning"', "# allow_private = false"]
    return "\n".join(lines) + "\n"


def _toml_line(name: str, value: object, description: str) -> str:
    """One setting as a TOML line; an unset optional setting and a secret are comments (a secret as ``***``)."""
    if value is None:
        return f"# {name} = (not set)  # {description}"
    if isinstance(value, SecretStr):
        return f'# {name} = "{SHOWN}"  # set, not shown: {description}'
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | Path):
        text = json.dumps(str(value))
    else:
        text = repr(value)
    return f"{name} = {text:<10} # {description}"
