"""`fusewatch import logs` on the real NIST nestor work orders (the raw CMMS export of the cached wheel)."""

from __future__ import annotations

import argparse
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from connectors.sources.datasets.fetch import fetch
from connectors.sources.datasets.nestor import RAW_MEMBER, load_raw_work_orders
from connectors.sources.recording import Recording
from fusewatch.commands.import_files import register
from fusewatch.core.codec import decode
from fusewatch.core.events import MaintenanceLog
from fusewatch.core.timeutil import format_time

KINDS = "PM01=none,PM02=repair,PM06=repair,PM04=note,PM05=note,PM13=note"


def test_nestor_work_orders_into_a_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "excavators.csv"
    export.write_bytes(zipfile.ZipFile(fetch("nist-nestor")).read(RAW_MEMBER))
    parser = argparse.ArgumentParser(prog="fusewatch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["import", "logs", str(export), "--map",
                              "asset=Asset,time=BscStartDate,text=OriginalShorttext,kind=PMType",
                              "--time-format", "%Y-%m-%d", "--asset-prefix", "excavator-", "--kind-map", KINDS,
                              "--unknown-kind", "error", "--out", str(tmp_path / "rec"), "--no-progress"])
    assert args.run(args) == 1  # imported, one row reported
    out = capsys.readouterr().out
    # the one row whose free text holds an unquoted comma: its order type column reads "t swing"
    assert (f"  {export}:3454:4: column 'PMType' (kind): unknown kind 't swing': map it with --kind-map"
            " t swing=<kind>") in out
    assert "imported 5484 events (maintenance-logs 5484) of 5 asset(s) from 2001-07-05T00:00:00Z to" \
           " 2012-12-13T00:00:00Z" in out
    recording = Recording(tmp_path / "rec")
    recording.verify()
    entries = [decode(m.value) for m in recording.messages()]
    assert all(isinstance(e, MaintenanceLog) for e in entries)
    logs = [e for e in entries if isinstance(e, MaintenanceLog)]
    orders = [o for o in load_raw_work_orders() if o.text != "won,t swing"]
    assert Counter(e.asset_id for e in logs) == Counter(f"excavator-{o.asset}" for o in orders)
    assert Counter((e.asset_id, format_time(e.ts)[:10], e.text) for e in logs) == Counter(
        (f"excavator-{o.asset}", str(o.date), o.text) for o in orders)
    assert Counter(e.kind for e in logs) == {None: 5216, "repair": 153 + 98, "note": 7 + 4 + 6}
