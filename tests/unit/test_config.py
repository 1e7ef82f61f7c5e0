"""Configuration: file, environment, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusewatch.config import FusewatchConfig, load_config, to_toml
from fusewatch.core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config" / "fusewatch.example.toml"


def test_the_example_file_lists_the_defaults() -> None:
    assert load_config(EXAMPLE) == FusewatchConfig()
    text = EXAMPLE.read_text()
    for section in ("aligner", "models", "alerts"):
        for name in type(getattr(FusewatchConfig(), section)).model_fields:
            assert f"\n{name} = " in text, f"{section}.{name} missing from the example"


def test_file_values_and_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "site.toml"
    path.write_text("[alerts]\nopen_k = 4\nopen_n = 12\n[aligner]\nwindow_s = 120\n")
    monkeypatch.setenv("FUSEWATCH_ALERTS__OPEN_K", "5")
    config = load_config(path)
    assert (config.alerts.open_k, config.alerts.open_n, config.aligner.window_s) == (5, 12, 120.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[alerts]\nopen_k = 'six'\n", "alerts.open_k: Input should be a valid integer"),
        ("[aligner]\nwindow_s = -5\n", "aligner.window_s: Input should be greater than 0"),
        ("[models]\nfusion = 'average'\n", "models.fusion: Input should be 'fisher', 'weighted', 'noisy_or',"),
        ("[alerts]\nopen_kk = 3\n", "alerts.open_kk: unknown setting"),
        ("[alerts]\nopen_k = 20\n", "alerts: open_k must not exceed open_n"),
        ("[alerts\n", "not valid TOML"),
    ],
)
def test_bad_files_name_the_key_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_webhooks_are_read_checked_and_never_printed_with_their_secret(tmp_path: Path) -> None:
    path = tmp_path / "hooks.toml"
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    path.write_text(f'[[webhooks]]\nurl = "https://hooks.example.com/fw"\nsecret = "{secret}"\n'
                    'min_severity = "critical"\n')
    config = load_config(path)
    (hook,) = config.webhooks
    endpoint = hook.endpoint()
    assert (endpoint.url, endpoint.min_severity, endpoint.allow_private) == ("https://hooks.example.com/fw",
                                                                              "critical", False)
    assert str(endpoint.secret) == secret
    printed = to_toml(config)
    assert "[[webhooks]]" in printed and secret[6:] not in printed
    path.write_text('[[webhooks]]\nurl = "ftp://x"\nsecret = "whsec_abc"\n')
    with pytest.raises(ConfigError, match=r"webhooks\.0\.url: must start with http:// or https://"):
        load_config(path)
