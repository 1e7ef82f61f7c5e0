"""Scoring throughput with a hanging webhook endpoint stays within 10 % of a healthy one.

The embedded demo (:func:`fusewatch.demo.run_demo`, the real scoring path: worker processes score, the parent
writes SQLite and submits every alert transition to the webhook outbox) is run with an alert policy that flaps
(hundreds of transitions), under three conditions, interleaved:

- ``none``: no webhook;
- ``healthy``: a receiver on loopback answering 204 at once;
- ``hanging``: a receiver that accepts the connection and never answers, so every attempt of the sender ends
  with its timeout.

The receivers run in their own process (as a receiver on another host would), so they do not share the
parent's interpreter lock. Throughput is scored windows per second of ``summary["wall_seconds"]``, which the
demo measures before it drains the outbox.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from statistics import median
from typing import Any

from benchmarks.run import stat
from connectors.sources.simulator import SimulatorConfig
from connectors.webhooks.delivery import Endpoint, RetryPolicy
from connectors.webhooks.signing import WebhookSecret
from fusewatch.config import FusewatchConfig
from fusewatch.demo import run_demo
from streams.alerts import AlertPolicyConfig
from streams.model_config import ModelConfig

NAME = "webhooks"
GOAL_RATIO = 0.9
CONDITIONS = ("none", "healthy", "hanging")
SENDER_THREAD = "fusewatch-webhooks"  # the prefix of the names WebhookSender.start gives its threads


@dataclass(frozen=True)
class Size:
    assets: int
    days: float
    repetitions: int
    workers: int = 2


FULL = Size(assets=4, days=0.5, repetitions=3)
QUICK = Size(assets=2, days=0.25, repetitions=1)
DRAIN_S = 2.0  # the demo's wait for pending deliveries after scoring (its default is a minute)

# Short warm-up and a policy that opens and closes on almost every crossing of one threshold: a transition
# every few windows per asset, so the outbox is busy during the whole run.
MODELS = ModelConfig(warmup_windows=60, calibration_min_samples=10, learn_delay=0)
ALERTS = AlertPolicyConfig(open_threshold=0.003, open_k=1, open_n=1, escalate_k=1, close_threshold=0.003,
                           close_windows=1, cooldown_s=0)


def config() -> FusewatchConfig:
    return FusewatchConfig(models=MODELS, alerts=ALERTS)


class _NoContent(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def serve_healthy(conn: Connection) -> None:
    """Receiver process: answer every POST with 204 at once; sends its port through ``conn``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoContent)
    conn.send(server.server_address[1])
    server.serve_forever()


def serve_hanging(conn: Connection) -> None:
    """Receiver process: accept every connection and never answer (the connections are held open)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    conn.send(listener.getsockname()[1])
    held: list[socket.socket] = []
    while True:
        client, _ = listener.accept()
        held.append(client)


@contextmanager
def receiver(condition: str) -> Iterator[str | None]:
    """The receiver of ``condition`` in its own process; yields its URL (``None`` for ``none``)."""
    if condition == "none":
        yield None
        return
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    target = serve_healthy if condition == "healthy" else serve_hanging
    process = context.Process(target=target, args=(child,), name=f"receiver-{condition}", daemon=True)
    process.start()
    try:
        if not parent.poll(60):
            raise RuntimeError(f"the {condition} receiver did not start")
        yield f"http://127.0.0.1:{parent.recv()}/hook"
    finally:
        process.terminate()
        process.join(10)
        parent.close()
        child.close()


class _ThreadErrors:
    """Exceptions that end a webhook sender thread (it can outlive ``WebhookSender.stop``)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._previous = threading.excepthook

    def __enter__(self) -> _ThreadErrors:
        def hook(args: threading.ExceptHookArgs) -> None:
            if args.thread is not None and args.thread.name.startswith(SENDER_THREAD):
                self.errors.append(f"{args.exc_type.__name__}: {args.exc_value}")
            else:
                self._previous(args)
        threading.excepthook = hook
        return self

    def __exit__(self, *exc: object) -> None:
        threading.excepthook = self._previous


def _sender_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(SENDER_THREAD) and t.is_alive()]


def _cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the demo's workers), user + system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_once(condition: str, size: Size, workdir: Path) -> dict[str, Any]:
    """One demo run under ``condition``; its windows, seconds, transitions and deliveries by state."""
    with _ThreadErrors() as errors:
        with receiver(condition) as url:
            hooks = [] if url is None else [Endpoint(url, WebhookSecret.generate(), allow_private=True)]
            simulator = SimulatorConfig(assets=size.assets, days=size.days, seed=0)
            load = os.getloadavg()[0]
            cpu = _cpu_seconds()
            started = time.perf_counter()
            outcome = run_demo(config(), simulator, workdir / condition, workers=size.workers, progress=False,
                               webhooks=hooks, drain_s=DRAIN_S)
            total = time.perf_counter() - started
            cpu = _cpu_seconds() - cpu  # the workers are reaped by now; the receiver is not yet
            lingering = len(_sender_threads())
        for thread in _sender_threads():  # its receiver is gone now: the blocked request fails at once
            thread.join(5)
    with closing(sqlite3.connect(outcome.database)) as db:
        transitions = int(db.execute("SELECT count(*) FROM alerts").fetchone()[0])
    summary = outcome.summary
    wall = float(summary["wall_seconds"])
    return {"condition": condition, "windows": int(summary["windows"]), "wall_seconds": wall,
            "windows_per_s": summary["windows"] / wall, "transitions": transitions,
            "cpu_ms_per_window": 1000 * cpu / max(1, int(summary["windows"])), "load_before": round(load, 2),
            "deliveries": dict(sorted(summary.get("webhooks", {}).items())),
            "after_scoring_s": round(total - wall, 1), "lingering_threads": lingering,
            "thread_errors": errors.errors}


def _states(runs: list[dict[str, Any]]) -> str:
    """Deliveries by state at the end, as ``state median`` over the runs."""
    names = sorted({state for run in runs for state in run["deliveries"]})
    if not names:
        return "–"
    return ", ".join(f"{name} {median(run['deliveries'].get(name, 0) for run in runs):g}" for name in names)


def run(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    size = QUICK if quick else FULL
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in CONDITIONS}
    total = size.repetitions * len(CONDITIONS)
    with tempfile.TemporaryDirectory(prefix="fusewatch-bench-") as tmp:
        for repetition in range(size.repetitions):
            order = CONDITIONS[repetition % 3:] + CONDITIONS[:repetition % 3]  # rotate: no condition always first
            for condition in order:
                result = run_once(condition, size, Path(tmp) / f"r{repetition}")
                runs[condition].append(result)
                log(f"[{NAME} {sum(map(len, runs.values()))}/{total}] {condition:<7} repetition {repetition + 1}: "
                    f"{result['windows']} windows in {result['wall_seconds']:.1f} s = "
                    f"{result['windows_per_s']:.1f} windows/s, {result['transitions']} transitions, "
                    f"deliveries {result['deliveries'] or '-'}, {result['after_scoring_s']:.1f} s after scoring")
    throughput = {c: stat((r["windows_per_s"] for r in runs[c]), 2) for c in CONDITIONS}
    ratios = {
        "hanging_over_healthy": stat((h["windows_per_s"] / k["windows_per_s"]
                                      for h, k in zip(runs["hanging"], runs["healthy"], strict=True)), 3),
        "healthy_over_none": stat((k["windows_per_s"] / n["windows_per_s"]
                                   for k, n in zip(runs["healthy"], runs["none"], strict=True)), 3),
    }
    headline = round(throughput["hanging"]["median"] / throughput["healthy"]["median"], 3)
    healthy_vs_none = round(throughput["healthy"]["median"] / throughput["none"]["median"], 3)
    transitions = sorted({r["transitions"] for rs in runs.values() for r in rs})
    policy = RetryPolicy()
    cpu = {c: stat((r["cpu_ms_per_window"] for r in runs[c]), 2) for c in CONDITIONS}
    rows = [[c, throughput[c], stat((r["wall_seconds"] for r in runs[c]), 1), cpu[c],
             stat((r["load_before"] for r in runs[c]), 2), runs[c][0]["windows"], runs[c][0]["transitions"],
             _states(runs[c])] for c in CONDITIONS]
    hanging = runs["hanging"]
    notes = [
        f"Every run scored the same {runs['none'][0]['windows']} windows and raised "
        f"{', '.join(map(str, transitions))} alert transitions; with a webhook each was submitted to the outbox "
        "during scoring.",
        f"Healthy receiver: {_states(runs['healthy'])} at the end (after the drain of up to {DRAIN_S:g} s).",
        f"Hanging receiver: {_states(hanging)} at the end. Its delivery thread waits {policy.timeout_s:g} s for "
        "each answer, so within a run only about one attempt per timeout is made; the other transitions wait "
        "in the outbox (they stay there for the next process). Other endpoints have threads of their own.",
    ]
    busy = [r for rs in runs.values() for r in rs if r["load_before"] > size.workers + 0.5]
    if busy:
        notes.insert(0, f"Caution: {len(busy)} of {total} runs started with a 1-minute load average above "
                        f"{size.workers + 0.5:g} on {os.cpu_count()} cores (the previous run's load decays over a "
                        "minute; more means other work), so the "
                        "throughput figures and ratios carry that noise; compare the CPU ms / window column and "
                        "the runs with the lowest load.")
    if any(r["lingering_threads"] for r in hanging):
        stop_s = stat((r["after_scoring_s"] for r in hanging), 1)
        errors = sorted({e.rstrip(".") for r in hanging for e in r["thread_errors"]})
        still = sum(r["lingering_threads"] > 0 for r in hanging)
        notes.append(
            f"With the hanging receiver, the demo needed {stop_s['median']:g} s "
            f"({stop_s['min']:g}–{stop_s['max']:g}) after scoring (drain {DRAIN_S:g} s, then "
            f"`WebhookSender.stop` waits up to 2 s for the thread, which is blocked in a request, then leaves it to "
            f"finish) and the thread was still in its request when the demo returned in {still}"
            f" of {len(hanging)} runs"
            + (f"; it then ended with {'; '.join(errors)}" if errors else "; it then ended cleanly") + ".")
    return {
        "title": "Scoring throughput with a hanging webhook endpoint",
        "goal": {"text": f"throughput with a hanging endpoint ≥ {GOAL_RATIO:g} × throughput with a healthy one",
                 "met": headline >= GOAL_RATIO,
                 "value": f"hanging / healthy = {headline:.3f} (median of runs; per repetition "
                          f"{ratios['hanging_over_healthy']['min']:.3f}–{ratios['hanging_over_healthy']['max']:.3f})"},
        "method": (
            f"`fusewatch.demo.run_demo` on {size.assets} simulated assets × {size.days:g} day "
            f"({size.workers} worker processes, no progress bar, output in a temporary directory) with an alert "
            "policy that opens and closes on every crossing of one low threshold, so alert transitions are "
            "submitted to the webhook outbox throughout scoring and the background sender delivers while the "
            "workers score. Three conditions, interleaved in rotating order: no webhook; a loopback receiver "
            "answering 204 at once; a loopback receiver that accepts the connection and never answers (the "
            f"sender's {policy.timeout_s:g} s timeout expires on every attempt). The receivers run in their own "
            "process. Throughput is scored windows divided by the demo's `wall_seconds`, measured before it drains "
            f"the outbox (the drain is cut to {DRAIN_S:g} s with `drain_s`). The ratios are of the medians; the "
            "table's ratio ranges pair the runs of one repetition. CPU ms / window is the CPU time (user + system) of "
            "the demo's processes (parent with its sender thread, and the workers) per scored window; it moves less "
            "than the throughput with other load on the machine, shown by the 1-minute load average before each "
            "run (the demo alone brings it to about its worker count)."),
        "parameters": {"assets": size.assets, "days": size.days, "workers": size.workers,
                       "repetitions": size.repetitions, "drain_s": DRAIN_S,
                       "alerts": ALERTS.model_dump(exclude_unset=True),
                       "models": MODELS.model_dump(include={"warmup_windows", "calibration_min_samples",
                                                            "learn_delay"}),
                       "retry_policy": {"timeout_s": policy.timeout_s, "base_backoff_s": policy.base_backoff_s,
                                        "attempts": policy.attempts}},
        "tables": [
            {"caption": "Throughput by condition",
             "columns": ["condition", "windows/s", "wall s (scoring)", "CPU ms / window", "load before",
                         "windows", "transitions", "deliveries at the end"],
             "rows": rows},
            {"caption": "Ratios (goal: hanging / healthy ≥ 0.9)",
             "columns": ["ratio", "of the medians", "per repetition"],
             "rows": [["hanging / healthy", headline, ratios["hanging_over_healthy"]],
                      ["healthy / none", healthy_vs_none, ratios["healthy_over_none"]]]},
        ],
        "figures": {
            "windows_per_s": throughput, "cpu_ms_per_window": cpu, "ratios": ratios,
            "ratio_of_medians": {"hanging_over_healthy": headline, "healthy_over_none": healthy_vs_none},
            "transitions": transitions,
            "runs": {c: [{k: v for k, v in r.items() if k != "condition"} for r in runs[c]] for c in CONDITIONS},
        },
        "notes": notes,
    }
