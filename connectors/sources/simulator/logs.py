"""Maintenance logs of the simulated plant, written the way technicians write them.

Each asset gets routine inspections every 1-3 days on the day shift (07:00-17:00 UTC), lubrication every 5-9
days, miscellaneous notes and rare false alarms. A fault shows in the logs only once a human would notice it
(see :data:`NOTICE`): from then on inspections turn into symptom reports and operators add their own, more
alarmed above :data:`WORSE`. The failure is logged when the asset trips, the repair when it restarts.

Texts mix shorthand (brg, NDE/DE, vib, lube, mtr, chkd, abt, ...), varied asset names ("pump 3", "P-03",
"pmp 3"), lower-case scribbles and typos; about 20 % of the entries leave ``kind`` unset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fusewatch.core.events import FaultType, LogKind, MaintenanceLog
from fusewatch.core.timeutil import NS_PER_DAY, NS_PER_HOUR

NOTICE: dict[str, float] = {"bearing_outer": 0.6, "bearing_inner": 0.6, "leak": 0.4, "winding": 0.15}
"""Severity at which a technician notices each fault type."""
WORSE: dict[str, float] = {"bearing_outer": 0.85, "bearing_inner": 0.85, "leak": 0.75, "winding": 0.5}
"""Severity at which the symptom reports become alarmed."""
SHORTHAND = ("brg", "NDE", "DE", "vib", "lube", "mtr", "chkd", "abt", "insp", "svc", "nr", "frm", "w/", "ea", "pmp")
"""Abbreviations the vocabulary uses."""

_DAY_AUTHORS = ("JK", "mt", "R.Olsen", "tech07", "AB", "S.Kowalski")
_NIGHT_AUTHORS = ("night-op", "op2", "dvs")
_LABELS = {
    "pump": ("pump {n}", "P-{n:02d}", "P{n}", "pmp {n}", "pump #{n}", "P-{n:02d}"),
    "motor": ("motor {n}", "M-{n:02d}", "mtr {n}", "M{n}", "motor #{n}", "M-{n:02d}"),
}
_LOCATIONS = {"DE": ("DE", "drive end", "D/E", "DE"), "NDE": ("NDE", "non drive end", "NDE", "N/D/E")}
_BEARING = ("brg", "bearing", "brg", "bearing", "brng")

_INSPECTION = (
    "routine insp {a} - ok",
    "chkd {a}, no abnormal noise, temp ok",
    "PM round {a}: all normal",
    "{a} walkdown ok. {brg} temp {temp}C",
    "daily chk {a} done, vib {vib} mm/s DE, nothing to report",
    "insp {a}: guards ok, running smooth",
    "{a} ok",
    "looked at {a} on my round, fine",
    "chkd {a} - running normal abt {load}% load",
)
_INSPECTION_KIND = {
    "pump": ("{a} seal dry, pressures normal", "chkd suction/discharge press on {a}, ok"),
    "motor": ("{a} amps normal ({amps}A), fan cover clean", "{a} no heat/smell, amps ok"),
}
_LUBE = (
    "greased {a} DE + NDE brgs",
    "lube {a} - 2 shots ea brg",
    "{a} relubed, DE+NDE",
    "lubricated bearings on {a}",
    "greasing done {a}, old grease purged ok",
)
_NOTES = (
    "cleaned area around {a}",
    "{a} guard bolt tightened",
    "operator says {a} running fine",
    "{a} label renewed",
    "swept floor nr {a}",
    "tagged {a} for PM next wk",
    "painted base of {a}",
)
_FALSE_ALARMS = {
    "pump": (
        "op reported noise frm {a}, chkd - pipework rattle, not the pump",
        "thought i saw oil under {a}, just water from cleaning",
    ),
    "motor": (
        "op says {a} sounds odd, listened w/ stethoscope, seems ok",
        "{a} warm to touch but within limits ({temp}C)",
    ),
}
_SYMPTOMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "bearing": (
        (
            "slight rattle on {a} {loc} {brg}",
            "{a} {loc} {brg} noisy, will monitor",
            "hear a grinding noise from {a} {loc} end, brg?",
            "{a} {brg} sounds rough, vib {vib} mm/s",
            "{loc} {brg} on {a} running a bit hot ({temp}C)",
        ),
        (
            "{a} {loc} {brg} v noisy + hot, plan replacement",
            "loud knocking frm {a} {loc} brg, vib {vib} mm/s!!",
            "{a} brg getting worse, temp {temp}C, need to change asap",
        ),
    ),
    "leak": (
        (
            "oil under {a} seal",
            "small puddle under {a}, seal weeping?",
            "oil on floor by {a}, wiped",
            "{a} mech seal dripping, keep an eye on it",
        ),
        ("{a} seal leaking steady, drip tray placed", "lots of oil under {a} again, seal needs replacing"),
    ),
    "winding": (
        (
            "{a} smells hot, insul?",
            "burning smell nr {a}",
            "{a} housing hot to touch, amps {amps}A",
            "smell of varnish around {a}??",
        ),
        (
            "{a} v hot, discolouration on frame",
            "IR gun on {a}: {ir}C on frame, hi",
            "{a} still smells burnt, megger planned",
        ),
    ),
}
_FAILURES = {
    "bearing": (
        "{a} tripped, brg seized",
        "{a} tripped on hi vib, {loc} brg gone",
        "{a} stopped - {loc} {brg} collapsed",
    ),
    "leak": ("{a} shut down, seal blown, oil everywhere", "{a} tripped on low oil lvl, seal failed"),
    "winding": ("{a} tripped on overcurrent, winding burnt smell", "{a} tripped, insulation failure, megger 0.2MOhm"),
}
_REPAIRS = {
    "bearing": ("replaced {loc} brg, realigned", "new {loc} {brg} fitted on {a}, alignment chkd, back in svc"),
    "leak": ("new mech seal fitted {a}, cleaned up oil, leak chkd ok", "replaced seal on {a}, restarted, no drips"),
    "winding": ("{a} rewound and reinstalled, megger ok, restarted", "swapped {a} for spare mtr, aligned, running"),
}
_DOWN = ("{a} LOTO, waiting on parts", "{a} down, fitter called in", "{a} isolated for repair")
_POST_REPAIR = ("post repair chk {a}: running smooth, vib {vib} mm/s", "{a} ok after repair", "chkd {a} after job, ok")


class FaultTimeline(Protocol):
    """What the log writer needs to know of a fault (satisfied by the plant's fault plan)."""

    @property
    def fault_type(self) -> FaultType: ...

    @property
    def location(self) -> str: ...

    @property
    def onset_ns(self) -> int: ...

    @property
    def failure_ns(self) -> int: ...

    @property
    def restart_ns(self) -> int: ...

    def severity(self, ts_ns: int) -> float: ...

    def time_at(self, severity: float) -> int: ...


@dataclass(frozen=True)
class LogEntry:
    """One planned log entry: its true ``kind``, and whether the technician labelled it and made a typo."""

    ts: int
    text: str
    author: str
    kind: LogKind
    labelled: bool
    typo: bool

    def to_event(self, asset_id: str) -> MaintenanceLog:
        """The event as the technician files it (``kind`` left unset when not labelled)."""
        return MaintenanceLog(
            asset_id=asset_id, ts=self.ts, text=self.text, author=self.author, kind=self.kind if self.labelled else None
        )


def _family(fault: FaultType) -> str:
    return "bearing" if fault.startswith("bearing") else fault


class _Writer:
    """Turns (time, template set) into texts with the asset's naming, readings, scribbles and typos."""

    def __init__(self, rng: np.random.Generator, number: int, kind: str, location: str, unlabeled: float) -> None:
        self.rng, self.number, self.kind, self.location, self.unlabeled = rng, number, kind, location, unlabeled
        self.entries: list[LogEntry] = []

    def pick(self, options: tuple[str, ...]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def write(
        self, ts: int, kind: LogKind, templates: tuple[str, ...], family: str | None = None, sev: float = 0.0
    ) -> None:
        rng = self.rng
        ts -= ts % 1_000_000_000  # technicians log to the second
        fields = {
            "a": self.pick(_LABELS[self.kind]).format(n=self.number),
            "loc": self.pick(_LOCATIONS.get(self.location, _LOCATIONS["DE"])),
            "brg": self.pick(_BEARING),
            "load": int(rng.integers(6, 11)) * 10,
            **_readings(rng, family, sev),
        }
        text = self.pick(templates).format(**fields)
        typo = bool(rng.random() < 0.15)
        if typo:
            text = add_typo(rng, text)
        roll = float(rng.random())
        if roll < 0.25:
            text = text.lower()
        elif roll < 0.45 and text[-1].isalnum():
            text += "."
        hour = (ts % NS_PER_DAY) / NS_PER_HOUR
        author = self.pick(_DAY_AUTHORS if 7.0 <= hour < 17.0 else _NIGHT_AUTHORS)
        labelled = bool(rng.random() >= self.unlabeled)
        self.entries.append(LogEntry(ts=ts, text=text, author=author, kind=kind, labelled=labelled, typo=typo))


def _readings(rng: np.random.Generator, family: str | None, severity: float) -> dict[str, str]:
    """Hand-held readings: healthy values, shifted only by a fault a human can already notice."""
    temp, vib, amps, ir = rng.uniform(36.0, 46.0), rng.uniform(1.2, 2.8), rng.uniform(38.0, 46.0), rng.uniform(55, 65)
    if family == "bearing":
        temp += 30.0 * max(0.0, severity - 0.5)
        vib += 8.0 * max(0.0, severity - 0.5)
    elif family == "winding":
        amps *= 1.0 + 0.15 * severity
        ir += 45.0 * severity
    return {"temp": f"{temp:.0f}", "vib": f"{vib:.1f}", "amps": f"{amps:.0f}", "ir": f"{ir:.0f}"}


def add_typo(rng: np.random.Generator, text: str) -> str:
    """Swap, drop or double one letter of a random word of four letters or more (return ``text`` if none)."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return text
    i = candidates[int(rng.integers(len(candidates)))]
    word = words[i]
    j = int(rng.integers(1, len(word) - 1))
    action = int(rng.integers(3))
    if action == 0 and word[j] != word[j + 1]:
        word = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    elif action == 1:
        word = word[:j] + word[j + 1 :]
    else:
        word = word[:j] + word[j] + word[j:]
    words[i] = word
    return " ".join(words)


def _day_time(rng: np.random.Generator, day_ns: int) -> int:
    """A random second of the day shift of the day starting at ``day_ns``."""
    return day_ns + 7 * NS_PER_HOUR + int(rng.integers(10 * 3600)) * 1_000_000_000


def plan_logs(
    rng: np.random.Generator,
    *,
    number: int,
    kind: str,
    start_ns: int,
    end_ns: int,
    fault: FaultTimeline | None,
    unlabeled_fraction: float = 0.2,
) -> list[LogEntry]:
    """Plan every log entry of one asset over ``[start_ns, end_ns)``, sorted by time.

    Parameters
    ----------
    rng
        The asset's log stream.
    number, kind
        How technicians name the asset ("pump 3", "M-02", ...).
    start_ns, end_ns
        The run.
    fault
        The asset's fault, or ``None`` for a healthy asset.
    unlabeled_fraction
        Share of entries whose ``kind`` the technician leaves unset.
    """
    writer = _Writer(rng, number, kind, fault.location if fault else "DE", unlabeled_fraction)
    first_day = start_ns - start_ns % NS_PER_DAY
    notice = fault.time_at(NOTICE[fault.fault_type]) if fault else end_ns

    def down(ts: int) -> bool:
        return fault is not None and fault.failure_ns <= ts < fault.restart_ns

    def faulty(ts: int) -> bool:
        return fault is not None and fault.onset_ns <= ts < fault.restart_ns

    for ts in _every(rng, first_day, end_ns, (1, 4), start_ns):
        if down(ts):
            continue
        if fault is not None and notice <= ts < fault.failure_ns:
            _symptom(writer, ts, fault)
        else:
            writer.write(ts, "inspection", _INSPECTION + _INSPECTION_KIND[kind])
    for ts in _every(rng, first_day + int(rng.integers(1, 6)) * NS_PER_DAY, end_ns, (5, 10), start_ns):
        if not down(ts):
            writer.write(ts, "note", _LUBE)
    for rate, templates in ((0.35, _NOTES), (0.06, _FALSE_ALARMS[kind])):
        for ts in _poisson(rng, start_ns, end_ns, rate):
            if not faulty(ts):
                writer.write(ts, "note", templates)
    if fault is not None:
        _fault_story(writer, rng, fault, notice, end_ns)
    return sorted(writer.entries, key=lambda e: e.ts)


def _every(rng: np.random.Generator, day_ns: int, end_ns: int, gap_days: tuple[int, int], start_ns: int) -> list[int]:
    times = []
    while day_ns < end_ns:
        ts = _day_time(rng, day_ns)
        if start_ns <= ts < end_ns:
            times.append(ts)
        day_ns += int(rng.integers(*gap_days)) * NS_PER_DAY
    return times


def _poisson(rng: np.random.Generator, start_ns: int, end_ns: int, per_day: float) -> list[int]:
    count = int(rng.poisson(per_day * (end_ns - start_ns) / NS_PER_DAY))
    return sorted(int(x) for x in rng.integers(start_ns, end_ns, size=count))


def _symptom(writer: _Writer, ts: int, fault: FaultTimeline) -> None:
    family = _family(fault.fault_type)
    severity = fault.severity(ts)
    stage = 1 if severity >= WORSE[fault.fault_type] else 0
    writer.write(ts, "symptom", _SYMPTOMS[family][stage], family, severity)


def _fault_story(writer: _Writer, rng: np.random.Generator, fault: FaultTimeline, notice: int, end_ns: int) -> None:
    """Operators' own symptom reports from the moment the fault is noticeable, the failure and the repair."""
    family = _family(fault.fault_type)
    ts = notice + int(rng.uniform(0.5, 8.0) * NS_PER_HOUR)
    while ts < fault.failure_ns:
        _symptom(writer, ts, fault)
        ts += int(rng.uniform(8.0, 20.0) * NS_PER_HOUR)
    writer.write(fault.failure_ns, "failure", _FAILURES[family], family, 1.0)
    down_note = fault.failure_ns + int(rng.uniform(0.5, 3.0) * NS_PER_HOUR)
    if down_note < fault.restart_ns - NS_PER_HOUR // 2:
        writer.write(down_note, "note", _DOWN)
    writer.write(fault.restart_ns, "repair", _REPAIRS[family])
    check = fault.restart_ns + int(rng.uniform(2.0, 20.0) * NS_PER_HOUR)
    if check < end_ns:
        writer.write(check, "inspection", _POST_REPAIR)
