"""Secrets (passwords, tokens, signing secrets): read from the environment or from files, never shown.

A secret setting ``NAME`` has a twin ``NAME_file``: the path of a file holding the secret (as container secrets
are mounted, e.g. ``/run/secrets/kafka-password``). Give one or the other. The file is read when the secret is
used, so a rotated file is picked up by the next connection; one trailing newline is dropped. Values are
:class:`pydantic.SecretStr`, which prints as ``**********``; ``fusewatch config`` shows ``***``.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "password"
>>> _ = path.write_text("s3cret\\n")
>>> read_secret(None, path, "kafka.sasl_password")
's3cret'
>>> read_secret(SecretStr("inline"), None, "kafka.sasl_password")
'inline'
>>> read_secret(None, None, "kafka.sasl_password") is None
True
>>> read_secret(None, path.with_name("missing"), "kafka.sasl_password")
Traceback (most recent call last):
...
fusewatch.core.errors.ConfigError: kafka.sasl_password_file: cannot read .../missing (No such file or directory)
>>> check_secret_pair(SecretStr("x"), path, "kafka.sasl_password")
Traceback (most recent call last):
...
ValueError: give sasl_password or sasl_password_file, not both
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import SecretStr

from fusewatch.core.errors import ConfigError

log = logging.getLogger(__name__)

SHOWN = "***"  # how ``fusewatch config`` prints a secret that is set


def read_secret(value: SecretStr | None, file: Path | None, name: str) -> str | None:
    """The secret ``name`` (a dotted setting name for messages) from its value or its file; ``None`` if unset."""
    if value is not None:
        return value.get_secret_value()
    if file is None:
        return None
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}_file: cannot read {file} ({exc.strerror or exc})") from None
    return text.removesuffix("\n").removesuffix("\r")


def check_secret_pair(value: SecretStr | None, file: Path | None, name: str) -> None:
    """Raise :class:`ValueError` when both forms of a secret are given, or its file cannot be read."""
    short = name.rpartition(".")[2]
    if value is not None and file is not None:
        raise ValueError(f"give {short} or {short}_file, not both")
    if file is not None and not Path(file).is_file():
        raise ValueError(f"{short}_file: {file} is not a readable file")


def warn_command_line(flag: str, environment: str, file_flag: str | None = None) -> None:
    """Warn that a secret was given as a command-line argument (visible to every user in the process list)."""
    instead = f"the environment variable {environment}" + (f" or {file_flag} FILE" if file_flag else "")
    log.warning("%s on the command line is visible to other users of this host (ps, /proc); use %s instead",
                flag, instead)
