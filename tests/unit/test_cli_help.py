"""The command line's own help, and the one exception tree every command's errors come from."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import pytest

from fusewatch.cli import build_parser, main
from fusewatch.core import errors
from fusewatch.core.errors import FusewatchError


def test_help_lists_each_command_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    subcommands = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    commands = list(subcommands[0].choices)
    assert len(commands) == 19
    for name in commands:
        lines = [line for line in text.splitlines() if line.split()[:1] == [name]]
        assert len(lines) == 1, (name, lines)


def test_every_fusewatch_error_is_defined_in_the_one_exception_module() -> None:
    for root in ("fusewatch", "streams", "models", "connectors"):
        package = importlib.import_module(root)
        for info in pkgutil.walk_packages(package.__path__, root + "."):
            importlib.import_module(info.name)
    defined: list[type] = []
    pending: list[type] = [FusewatchError]
    while pending:
        cls = pending.pop()
        defined.append(cls)
        pending += cls.__subclasses__()
    elsewhere = [f"{cls.__module__}.{cls.__qualname__}" for cls in defined if cls.__module__ != errors.__name__]
    assert elsewhere == []


def test_an_error_reaching_main_is_one_line_and_exit_code_2(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[alerts]\nopen_k = 'six'\n")
    assert main(["config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fusewatch: error: ") and err.count("\n") == 1
    assert "alerts.open_k" in err
