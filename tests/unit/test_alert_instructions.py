"""`fusewatch alerts ack|maintenance` build the instruction entries the workers apply; bad ones are refused."""

from __future__ import annotations

import pytest

from fusewatch.cli import build_parser
from fusewatch.commands.alerts import instruction
from fusewatch.core.codec import decode, encode
from fusewatch.core.errors import FusewatchError, InvalidEventError
from fusewatch.core.events import MaintenanceLog, make_event
from fusewatch.core.timeutil import parse_time

NOW = parse_time("2026-11-30T12:00:00Z")


def test_ack_and_maintenance_entries_round_trip_the_wire_codec() -> None:
    ack = instruction(build_parser().parse_args(["alerts", "ack", "pump-01", "--by", "ana", "--note", "on it"]), NOW)
    assert (ack.asset_id, ack.ts, ack.action, ack.until, ack.author) == ("pump-01", NOW, "acknowledge", None, "ana")
    assert ack.text == "alert acknowledged by ana: on it"
    window = instruction(build_parser().parse_args(
        ["alerts", "maintenance", "motor-02", "--from", "2026-12-01T06:00:00Z", "--to", "2026-12-01T14:00:00Z",
         "--by", "ben"]), NOW)
    assert (window.action, window.ts, window.until) == (
        "maintenance", parse_time("2026-12-01T06:00:00Z"), parse_time("2026-12-01T14:00:00Z"))
    assert "planned maintenance until 2026-12-01T14:00:00Z" in window.text
    for entry in (ack, window):
        assert decode(encode(entry)) == entry


def test_bad_instructions_are_refused_with_the_reason() -> None:
    args = build_parser().parse_args(["alerts", "maintenance", "motor-02", "--from", "2026-12-01T14:00:00Z",
                                      "--to", "2026-12-01T06:00:00Z"])
    with pytest.raises(FusewatchError, match="is not after the start"):
        instruction(args, NOW)
    with pytest.raises(SystemExit):  # argparse: a time without an offset
        build_parser().parse_args(["alerts", "maintenance", "m", "--to", "2026-12-01T14:00:00"])
    with pytest.raises(InvalidEventError, match="until is given with action 'maintenance'"):
        make_event(MaintenanceLog, asset_id="m", ts=NOW, text="x", action="maintenance")
    with pytest.raises(InvalidEventError, match="until is given"):
        make_event(MaintenanceLog, asset_id="m", ts=NOW, text="x", action="acknowledge", until=NOW + 1)
    with pytest.raises(InvalidEventError, match="until must be after ts"):
        make_event(MaintenanceLog, asset_id="m", ts=NOW, text="x", action="maintenance", until=NOW)
