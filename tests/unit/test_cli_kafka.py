"""The Kafka commands' argument handling, which needs no broker."""

from __future__ import annotations

import pytest

from fusewatch.cli import build_parser, main


def test_speed_accepts_a_factor_or_max() -> None:
    parser = build_parser()
    assert parser.parse_args(["simulate", "--speed", "max"]).speed is None
    assert parser.parse_args(["simulate", "--speed", "60"]).speed == 60.0
    assert parser.parse_args(["simulate", "--speed", "2.5x"]).speed == 2.5
    assert parser.parse_args(["simulate"]).speed == 1.0


@pytest.mark.parametrize("speed", ["0", "-3", "fast"])
def test_a_bad_speed_is_refused_with_the_reason(speed: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["simulate", "--speed", speed])
    assert exited.value.code == 2
    assert "must be a positive number (times plant speed) or 'max'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["simulate"], ["topics", "create"], ["topics", "describe"]])
def test_a_malformed_broker_address_names_the_option(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--kafka", "no-port-here"]) == 2
    assert "fusewatch: error: --kafka: 'no-port-here' is not HOST:PORT" in capsys.readouterr().err


def test_a_bad_kafka_setting_in_the_environment_names_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FUSEWATCH_KAFKA__PARTITIONS", "0")
    assert main(["topics", "describe"]) == 2
    assert "kafka.partitions: Input should be greater than or equal to 1" in capsys.readouterr().err
