"""The OPC UA bridge: subscriptions to the plant's nodes → events on the Kafka input topics (docs/ingest-opcua.md).

:class:`OpcuaBridge` keeps one session with the server, supervised: it connects, reads the sample-rate nodes,
subscribes to every node of :func:`~connectors.ingest.opcua_values.watched_nodes` (server-side queue of
``queue_size`` values per node), and probes the session every ``check_every_s`` (a read of the server state). A
probe that fails (or times out three times in a row), a refused connection or a closed socket closes the
session, and it is opened again after a backoff (1 s doubling to ``backoff_max_s``), subscriptions included.
Every notification becomes an event (event time: the value's source timestamp, else its server timestamp,
counted) or a dead letter with the reason and the source
URI ``opc.tcp://HOST:PORT#<node id>``, handed to the :class:`~connectors.ingest.gateway.KafkaGateway` in order.

OPC UA has no acknowledgement to hold back, so at-least-once here means: nothing the subscription delivered is
dropped silently. A send Kafka failed is retried until Kafka has it; while more than ``max_pending`` events wait
for Kafka the subscription's publishing is switched off (the server then keeps up to ``queue_size`` values per
node, discarding the oldest beyond that — that loss is the server's and is reported as ``paused_s``); a value
the client still receives past ``max_pending`` + :data:`HEADROOM` is counted as ``lost`` and logged. After a
reconnect the server sends each node's current value again; a value whose source timestamp is not newer than the
last one sent for its node is not sent twice (counted as ``repeated``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import Subscription
from asyncua.ua.uaerrors import UaError

from connectors.ingest.gateway import KafkaGateway
from connectors.ingest.health import BridgeHealth
from connectors.ingest.opcua_client import alive, connect, disconnect, endpoint_of
from connectors.ingest.opcua_values import FLOAT_TYPES, WatchedNode, datetime_ns, event_of, rate_of
from fusewatch.core.codec import InputEvent
from fusewatch.core.errors import ConfigError, InvalidEventError
from fusewatch.core.plant import Opcua

log = logging.getLogger(__name__)
PROBES = 3
MAX_NOTIFICATIONS = 20
"""Values per publish response at most (20 snapshots of 25,600 floats are 2 MB): large responses stall both ends."""
HEADROOM = 10 * MAX_NOTIFICATIONS
"""Values beyond ``max_pending`` that may still arrive once publishing is switched off (responses under way)."""
"""Keepalive probes in a row that time out before the session counts as lost (a refused one: at once)."""


@dataclass
class _Item:
    """A notification on its way to Kafka: the node, the value and its timestamps."""

    node: WatchedNode
    value: Any
    variant: str | None
    ts_ns: int
    event: InputEvent | None = None
    error: str | None = None
    raw: bytes | None = None


class OpcuaBridge:
    """Subscriptions to ``nodes`` on ``url`` (default: the plant's ``[opcua] url``) sent through ``gateway``."""

    def __init__(self, opcua: Opcua, nodes: list[WatchedNode], gateway: KafkaGateway, health: BridgeHealth, *,
                 url: str | None = None, queue_size: int = 10, max_pending: int = 200, timeout_s: float = 4.0,
                 check_every_s: float = 1.0, backoff_max_s: float = 30.0) -> None:
        self.opcua, self.nodes, self.gateway, self.health = opcua, nodes, gateway, health
        self.url = url or opcua.url
        self.endpoint = endpoint_of(self.url)
        self.queue_size, self.max_pending, self.timeout_s = queue_size, max_pending, timeout_s
        self.check_every_s, self.backoff_max_s = check_every_s, backoff_max_s
        self.by_id = {node.node_id: node for node in nodes}
        self.rate_nodes = {n.sample_rate_node: n for n in nodes if n.sample_rate_node is not None}
        self.rates: dict[str, float] = {}
        self.last_ts: dict[str, int] = {}
        self.connects = 0
        self._queue: collections.deque[_Item] = collections.deque()
        self._retry: collections.deque[_Item] = collections.deque()
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="opcua-kafka")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused_since: float | None = None
        self._subscription: Subscription | None = None
        self._switching: asyncio.Future[None] | None = None
        self._paused_s = 0.0
        health.details.update(server=self.endpoint, nodes=len(nodes), paused=False, paused_s=0.0)

    @property
    def backlog(self) -> int:
        """Events received and not yet acknowledged by Kafka."""
        return len(self._queue) + len(self._retry) + self._in_flight

    async def run(self, stop: asyncio.Event) -> None:
        """Keep a session open and send what it delivers until ``stop`` is set; then send what is left."""
        self._loop = asyncio.get_running_loop()
        sender = asyncio.create_task(self._send_loop(stop))
        delay = 1.0
        try:
            while not stop.is_set():
                try:
                    await self._session(stop)
                    delay = 1.0
                except ConfigError:
                    raise
                except Exception as exc:
                    self.health.details["source_error"] = str(exc)
                    log.warning("%s; reconnecting in %.0f s", exc, delay)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    delay = min(delay * 2, self.backoff_max_s)
        finally:
            stop.set()
            self._wake.set()
            await sender
            self._executor.shutdown(wait=True)

    async def _session(self, stop: asyncio.Event) -> None:
        client = await connect(self.opcua, self.url, self.timeout_s)
        try:
            await self._read_rates(client)
            params = ua.CreateSubscriptionParameters(
                RequestedPublishingInterval=float(self.opcua.publishing_interval_ms), RequestedLifetimeCount=10_000,
                RequestedMaxKeepAliveCount=client.get_keepalive_count(self.opcua.publishing_interval_ms),
                MaxNotificationsPerPublish=MAX_NOTIFICATIONS, PublishingEnabled=True, Priority=0)
            subscription = await client.create_subscription(params, self)
            ids = [*self.by_id, *self.rate_nodes]
            results = await subscription.subscribe_data_change([client.get_node(i) for i in ids],
                                                               queuesize=self.queue_size)
            bad = [f"{i} ({r.name if hasattr(r, 'name') else r})" for i, r in zip(ids, results, strict=True)
                   if not isinstance(r, int)]
            if bad:
                log.error("OPC UA server %s refused to monitor: %s", self.endpoint, ", ".join(bad))
                self.health.details["unmonitored"] = bad
            self.connects += 1
            if self.connects > 1:
                self.health.count("reconnects")
            self.health.source_connected = True
            self.health.details.pop("source_error", None)
            log.info("OPC UA server %s: subscribed to %d nodes (connection %d)", self.endpoint, len(ids), self.connects)
            late = 0  # probes in a row without an answer in time (a busy server answers late, a dead one never)
            self._subscription = subscription
            while not stop.is_set():
                self._steer()
                try:
                    await asyncio.wait_for(stop.wait(), self.check_every_s)
                except TimeoutError:
                    try:
                        await alive(client, self.timeout_s)
                        late = 0
                    except Exception as exc:
                        late = late + 1 if isinstance(exc, TimeoutError) else PROBES
                        self.health.count("late_probes" if late < PROBES else "lost_sessions")
                        if late >= PROBES:
                            raise ConnectionError(f"OPC UA server {self.endpoint}: the session is lost"
                                                  f" ({type(exc).__name__}: {exc or 'no answer'})") from None
        finally:
            self._subscription = None
            self.health.source_connected = False
            self._resume_clock()
            await disconnect(client, self.timeout_s)

    async def _read_rates(self, client: Client) -> None:
        for node_id in self.rate_nodes:
            try:
                self.rates[node_id] = rate_of(await client.get_node(node_id).read_value(), node_id)
            except (InvalidEventError, UaError) as exc:
                self.rates.pop(node_id, None)
                log.error("OPC UA sample rate node %s: %s", node_id, exc)

    def _steer(self) -> None:
        """Switch publishing off above ``max_pending`` waiting events, on again below half of it (as a task)."""
        subscription = self._subscription
        if subscription is None or self._switching is not None:
            return
        if self._paused_since is None and self.backlog >= self.max_pending:
            self._paused_since = time.monotonic()
            self.health.count("pauses")
            self.health.details["paused"] = True
            log.warning("OPC UA publishing paused: %d events wait for Kafka", self.backlog)
            self._switching = asyncio.ensure_future(self._publishing(subscription, False))
        elif self._paused_since is not None and self.backlog <= self.max_pending // 2:
            self._resume_clock()
            log.info("OPC UA publishing resumed")
            self._switching = asyncio.ensure_future(self._publishing(subscription, True))

    async def _publishing(self, subscription: Subscription, on: bool) -> None:
        try:
            await asyncio.wait_for(subscription.set_publishing_mode(on), self.timeout_s)
        except Exception as exc:  # the probe finds out whether the session is still there
            log.warning("OPC UA publishing could not be switched %s: %s", "on" if on else "off", exc)
        finally:
            self._switching = None
        self._steer()  # the backlog may have crossed the other mark meanwhile

    def _resume_clock(self) -> None:
        if self._paused_since is not None:
            self._paused_s += time.monotonic() - self._paused_since
            self._paused_since = None
            self.health.details.update(paused=False, paused_s=round(self._paused_s, 1))

    # asyncua calls these (from a task of its own) for every notification of the subscription
    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        node_id = node.nodeid.to_string()
        value: ua.DataValue = data.monitored_item.Value
        if node_id in self.rate_nodes:
            try:
                self.rates[node_id] = rate_of(val, node_id)
            except InvalidEventError as exc:
                log.error("OPC UA sample rate node %s: %s", node_id, exc)
            return
        watched = self.by_id.get(node_id)
        if watched is None:
            return
        if val is None and (value.StatusCode is None or value.StatusCode.is_good()):  # no value yet (Null)
            self.health.count("null_values")
            return
        self.health.count("received")
        if value.StatusCode is not None and not value.StatusCode.is_good():
            self.health.count("bad_status")
            log.warning("OPC UA node %s: status %s, no value", node_id, value.StatusCode.name)
            return
        if value.SourceTimestamp is not None:
            ts_ns = datetime_ns(value.SourceTimestamp)
        elif value.ServerTimestamp is not None:
            ts_ns = datetime_ns(value.ServerTimestamp)
            self.health.count("server_timestamp_used")
        else:
            ts_ns = time.time_ns()
            self.health.count("arrival_time_used")
        if self.backlog >= self.max_pending + HEADROOM:
            self.health.count("lost")
            log.error("OPC UA value of %s at %d lost: %d events wait for Kafka", node_id, ts_ns, self.backlog)
            return
        variant = None if value.Value is None else value.Value.VariantType.name
        if variant in FLOAT_TYPES and isinstance(val, list):  # 4 or 8 bytes a sample while it waits, not 32
            with contextlib.suppress(TypeError, ValueError):  # if not numbers, event_of names what is wrong
                val = np.asarray(val, dtype=FLOAT_TYPES[variant])
        self._queue.append(_Item(watched, val, variant, ts_ns))
        self._wake.set()
        self._steer()

    def status_change_notification(self, status: Any) -> None:
        log.warning("OPC UA subscription status: %s", status)

    async def _send_loop(self, stop: asyncio.Event) -> None:
        """Hand the received values to Kafka in order; retry failed sends; at stop, drain for a while."""
        drain_until: float | None = None
        while True:
            if stop.is_set() and drain_until is None:
                drain_until = time.monotonic() + self.gateway.settings.timeout_s
            if drain_until is not None and (not self.backlog or time.monotonic() > drain_until):
                break
            item = None
            if self._retry:
                await asyncio.sleep(0.2)  # Kafka failed the last try: do not spin
                item = self._retry.popleft()
            elif self._queue:
                item = self._queue.popleft()
            if item is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.5)
                continue
            if not self._prepare(item):
                continue
            self._in_flight += 1
            await asyncio.get_running_loop().run_in_executor(self._executor, self._hand_over, item)
        if self.backlog:
            self.health.count("unsent_at_stop", self.backlog)
            log.error("%d OPC UA values were not acknowledged by Kafka at stop", self.backlog)
        await asyncio.get_running_loop().run_in_executor(self._executor, self.gateway.flush)

    def _prepare(self, item: _Item) -> bool:
        """Make the event or the dead letter of ``item`` (once); False for a value already sent."""
        if item.event is not None or item.error is not None:
            return True
        node_id = item.node.node_id
        if item.ts_ns <= self.last_ts.get(node_id, -1):
            self.health.count("repeated")
            return False
        self.last_ts[node_id] = item.ts_ns
        try:
            item.event = event_of(item.node, item.value, item.variant,
                                  item.ts_ns, self.rates.get(item.node.sample_rate_node or ""))
        except InvalidEventError as exc:
            item.error = str(exc)
            item.raw = _raw_of(item)
        item.value = None
        return True

    def _hand_over(self, item: _Item) -> None:
        """In the sending thread: give ``item`` to the gateway (which may block while Kafka is away)."""
        def done(error: BaseException | None) -> None:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._acknowledged, item, error)

        source = f"{self.endpoint}#{item.node.node_id}"
        if item.event is not None:
            self.gateway.send(item.event, done, source)
        else:
            self.gateway.dead_letter(source, str(item.error), item.raw, item.ts_ns, done)

    def _acknowledged(self, item: _Item, error: BaseException | None) -> None:
        self._in_flight -= 1
        self._steer()
        if error is not None:
            self.health.count("kafka_retries")
            self._retry.append(item)  # sent again, after the others that wait; Kafka keys and timestamps order it
            self._wake.set()


def _raw_of(item: _Item) -> bytes | None:
    """What a dead letter keeps of an unreadable value (never an image's bytes)."""
    value = item.value
    if item.node.modality == "frame":
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, list) and all(isinstance(x, int | float) for x in value):
        return np.asarray(value, dtype="<f8").tobytes()
    return repr(value).encode("utf-8")[:10_000]
