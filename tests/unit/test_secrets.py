"""Secrets: from the environment or files, checked at load, never printed; a secret flag is warned about."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from fusewatch.commands.common import (
    WEBHOOK_SECRET_ENV,
    add_influx_options,
    add_webhook_options,
    influx_settings,
    webhook_endpoints,
)
from fusewatch.config import FusewatchConfig, load_config, to_toml
from fusewatch.core.errors import ConfigError
from fusewatch.core.kafka_settings import KafkaSettings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_influx_options(parser, "write")
    add_webhook_options(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[kafka]\nsecurity_protocol = 'SASL_SSL'\n", "kafka: SASL_SSL needs sasl_username and a password"),
        ("[kafka]\nsecurity_protocol = 'TLS'\n", "kafka.security_protocol: Input should be 'PLAINTEXT', 'SSL',"),
        ("[kafka]\nsasl_password = 'x'\nsasl_password_file = '/etc/hostname'\n",
         "kafka: give sasl_password or sasl_password_file, not both"),
        ("[kafka]\nsasl_password_file = '/nonexistent/secret'\n",
         "kafka: sasl_password_file: /nonexistent/secret is not a readable file"),
        ("[kafka]\nssl_certfile = '/etc/hostname'\n", "kafka: ssl_certfile and ssl_keyfile go together"),
        ("[influx]\npassword = 'x'\n", "influx: a password needs a username"),
        ("[[webhooks]]\nurl = 'https://h.example.com/x'\n", "webhooks.0: give secret_file (or secret)"),
    ],
)
def test_a_bad_security_setting_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "site.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert message in str(error.value)


def test_the_password_file_is_read_when_used(tmp_path: Path) -> None:
    password = tmp_path / "kafka.password"
    password.write_text("first\n")
    settings = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_username="fw", sasl_password_file=password)
    assert settings.client_options()["sasl_plain_password"] == "first"
    password.write_text("rotated")  # a rotated secret is used by the next connection
    assert settings.client_options()["sasl_plain_password"] == "rotated"
    assert "first" not in repr(settings) and "rotated" not in repr(settings)


def test_config_shows_a_set_secret_as_stars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook_secret = tmp_path / "hook.secret"
    hook_secret.write_text(SECRET)
    monkeypatch.setenv("FUSEWATCH_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FUSEWATCH_KAFKA__SASL_USERNAME", "fusewatch")
    monkeypatch.setenv("FUSEWATCH_KAFKA__SASL_PASSWORD", "kafka-pw-123")
    monkeypatch.setenv("FUSEWATCH_INFLUX__USERNAME", "fusewatch")
    monkeypatch.setenv("FUSEWATCH_INFLUX__TOKEN", "tok-456")
    config = FusewatchConfig(webhooks=[{"url": "https://h.example.com/x", "secret": SECRET},
                                       {"url": "https://h.example.com/y", "secret_file": hook_secret}])
    text = to_toml(config)
    for secret in ("kafka-pw-123", "tok-456", SECRET, SECRET.removeprefix("whsec_")):
        assert secret not in text
    assert '# sasl_password = "***"' in text and '# token = "***"' in text
    assert f'secret_file = "{hook_secret}"' in text and '# secret = "***"' in text


def test_a_secret_on_the_command_line_works_but_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        settings = influx_settings(parse("--influx", "http://db:8086", "--influx-user", "fw",
                                         "--influx-password", "pw"), FusewatchConfig())
    assert settings.credentials() == ("fw", "pw", None)
    assert "--influx-password on the command line is visible to other users" in caplog.text
    assert "FUSEWATCH_INFLUX__PASSWORD or --influx-password-file FILE" in caplog.text
    assert "pw" not in caplog.text.replace("password", "")


def test_the_flags_replace_the_configured_secret(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    token = tmp_path / "token"
    token.write_text("from-file\n")
    config = FusewatchConfig(influx={"url": "http://db:8086", "token": "configured"})
    with caplog.at_level(logging.WARNING):
        settings = influx_settings(parse("--influx-token-file", str(token)), config)
    assert settings.credentials() == (None, None, "from-file") and not caplog.text


def test_the_webhook_secret_comes_from_the_environment_or_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    config = FusewatchConfig()
    with pytest.raises(Exception, match=WEBHOOK_SECRET_ENV):
        webhook_endpoints(parse("--webhook", "https://h.example.com/x"), config)
    monkeypatch.setenv(WEBHOOK_SECRET_ENV, SECRET)
    assert len(webhook_endpoints(parse("--webhook", "https://h.example.com/x"), config)) == 1
    monkeypatch.delenv(WEBHOOK_SECRET_ENV)
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    assert len(webhook_endpoints(parse("--webhook", "https://h.example.com/x", "--webhook-secret-file", str(path)),
                                 config)) == 1
    assert not caplog.text
    with caplog.at_level(logging.WARNING):
        webhook_endpoints(parse("--webhook", "https://h.example.com/x", "--webhook-secret", SECRET), config)
    assert "--webhook-secret on the command line is visible" in caplog.text and SECRET not in caplog.text
