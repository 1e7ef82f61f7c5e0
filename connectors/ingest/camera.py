"""Camera snapshots into the frames topic: each http camera of the plant file polled (docs/ingest-camera.md).

Each camera is one asyncio task with its own HTTP client, so a camera that hangs (bounded by its ``timeout_s``),
refuses or serves garbage delays no other. A snapshot must be ``image/jpeg`` and a whole JPEG
(:func:`~connectors.ingest.snapshots.check_jpeg`); its event time is the camera's own when it gives one
(:func:`~connectors.ingest.snapshots.snapshot_time`), else the moment it was asked. After failures a camera is
polled less often (:func:`~connectors.ingest.snapshots.backoff_s`), and its state is in the health endpoint.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.ingest.gateway import KafkaGateway
from connectors.ingest.health import BridgeHealth
from connectors.ingest.payloads import frame_event
from connectors.ingest.snapshots import backoff_s, check_jpeg, safe_url, snapshot_time
from fusewatch.core.errors import ConfigError, FusewatchError, InvalidEventError
from fusewatch.core.events import MAX_FRAME_BYTES, CameraFrame
from fusewatch.core.plant import CameraStream, Plant
from fusewatch.core.timeutil import format_time

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Letter:
    """A snapshot that cannot be used: reason, where from (URI without credentials) and when."""

    source: str
    error: str
    ts: int


Item = CameraFrame | Letter


class PendingQueue:
    """What a camera produced and Kafka has not acknowledged: the newest ``capacity`` items (a camera cannot
    replay), the older ones dropped and counted in :attr:`dropped`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: deque[Any] = deque()
        self.dropped = 0

    def push(self, item: Any) -> None:
        self.items.append(item)
        while len(self.items) > self.capacity:
            self.items.popleft()
            self.dropped += 1

    def pop(self) -> Any:
        return self.items.popleft()

    def put_back(self, item: Any) -> None:
        """Return an item Kafka refused to the front, unless newer ones already fill the queue."""
        if len(self.items) >= self.capacity:
            self.dropped += 1
            return
        self.items.appendleft(item)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class CameraState:
    """One camera: where it is, and how it fares (shown in the health body)."""

    asset_id: str
    stream: CameraStream
    queue: PendingQueue
    frames: int = 0
    letters: int = 0
    failures: int = 0
    last_success_ns: int | None = None
    last_error: str | None = None
    time_source: str | None = None
    last_logged: float = field(default=-1e18)
    suppressed: int = 0
    last_digest: tuple[int, bytes] | None = None
    sending: bool = False
    auth: tuple[str, httpx.Auth] | None = field(default=None, repr=False)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return safe_url(self.stream.url or "")

    def status(self) -> dict[str, Any]:
        return {"asset": self.asset_id, "url": self.url, "ok": self.failures == 0 and self.last_success_ns is not None,
                "frames": self.frames, "dead_letters": self.letters, "consecutive_failures": self.failures,
                "last_success": None if self.last_success_ns is None else format_time(self.last_success_ns),
                "last_error": self.last_error, "time_source": self.time_source, "pending": len(self.queue),
                "dropped": self.queue.dropped}


def http_cameras(plant: Plant, only: list[str] | None = None) -> list[tuple[str, CameraStream]]:
    """(asset id, camera) of every ``source = "http"`` camera, or of those named in ``only`` (unknown ids refused)."""
    cameras = [(asset.id, asset.camera) for asset in plant.assets
               if asset.camera is not None and asset.camera.source == "http"]
    if only:
        known = {camera.id for _, camera in cameras}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise ConfigError(f"--only: no http camera {', '.join(map(repr, unknown))} in the plant file;"
                              f" known: {', '.join(sorted(known)) or 'none'}")
        cameras = [(asset_id, camera) for asset_id, camera in cameras if camera.id in only]
    if not cameras:
        raise ConfigError("the plant file has no camera with source = \"http\"")
    return cameras


class CameraBridge:
    """Polls cameras and sends their frames (and unusable snapshots as dead letters) through ``gateway``.

    ``run()`` blocks until :meth:`stop`; ``buffer`` frames per camera wait while Kafka does not acknowledge
    (newest kept, the others counted as dropped); ``max_backoff_s`` caps the wait after failures.
    """

    def __init__(self, cameras: list[tuple[str, CameraStream]], gateway: KafkaGateway, health: BridgeHealth,
                 buffer: int = 100, max_backoff_s: float = 60.0, log_every_s: float = 300.0,
                 max_skew_s: float = 600.0) -> None:
        self.gateway, self.health = gateway, health
        self.max_backoff_s, self.log_every_s, self.max_skew_s = max_backoff_s, log_every_s, max_skew_s
        self.cameras = [CameraState(asset_id, stream, PendingQueue(buffer)) for asset_id, stream in cameras]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="camera-kafka")
        self._update_health()

    # -- lifecycle

    def run(self) -> None:
        asyncio.run(self._main())

    def stop(self) -> None:
        """Ask :meth:`run` to stop (from any thread): polls end, what is pending is sent for a bounded time."""
        self._stop_requested.set()
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        for camera in self.cameras:
            camera.wakeup = asyncio.Event()
        if self._stop_requested.is_set():
            self._sender.shutdown(wait=True)
            return
        senders = [asyncio.create_task(self._send_loop(camera)) for camera in self.cameras]
        polls = [asyncio.create_task(self._poll_loop(camera)) for camera in self.cameras]
        await self._stopping.wait()
        # a poll under way finishes (bounded by its timeout): a snapshot the camera already served is not lost
        _, late = await asyncio.wait(polls, timeout=max(camera.stream.timeout_s for camera in self.cameras) + 1.0)
        for task in late:
            task.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        drain_until = time.monotonic() + self.gateway.settings.timeout_s
        while any(len(camera.queue) or camera.sending for camera in self.cameras) and time.monotonic() < drain_until:
            await asyncio.sleep(0.05)
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        left = sum(len(camera.queue) for camera in self.cameras)
        if left:
            log.warning("camera bridge stopped with %d snapshot(s) Kafka had not acknowledged", left)
        self._sender.shutdown(wait=True)
        self._update_health()

    # -- polling

    async def _poll_loop(self, camera: CameraState) -> None:
        assert self._loop is not None and self._stopping is not None
        stream = camera.stream
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(limits=limits, follow_redirects=True, trust_env=False) as client:
            next_at = self._loop.time()
            while True:
                try:
                    await asyncio.wait_for(self._stopping.wait(), max(0.0, next_at - self._loop.time()))
                    return
                except TimeoutError:
                    pass
                started = self._loop.time()
                ok = await self._poll_once(client, camera)
                now = self._loop.time()
                if ok:
                    next_at = max(started + stream.interval_s, now)
                else:
                    next_at = now + backoff_s(camera.failures, stream.interval_s, self.max_backoff_s)
                self._update_health()

    async def _poll_once(self, client: httpx.AsyncClient, camera: CameraState) -> bool:
        """One snapshot; True when it became a frame (or was the same snapshot again)."""
        stream = camera.stream
        requested_ns = time.time_ns()
        try:
            auth = _auth_of(camera)
            async with asyncio.timeout(stream.timeout_s):
                status, headers, body = await _get(client, stream.url or "", auth, stream.timeout_s)
        except TimeoutError:
            return self._failed(camera, "timeout", f"no answer within {stream.timeout_s:g} s")
        except ConfigError as exc:
            return self._failed(camera, "config", str(exc))
        except InvalidEventError as exc:
            return self._reject(camera, str(exc), requested_ns)
        except httpx.HTTPError as exc:
            reason = str(exc).replace(stream.url or "\0", camera.url) or type(exc).__name__
            return self._failed(camera, "unreachable", f"{type(exc).__name__}: {reason}")
        if status in (401, 403):
            refused = "wrong credentials" if status == 401 else "forbidden"
            return self._failed(camera, "auth", f"HTTP {status}: {refused} (check username and password)")
        if status != 200:
            return self._failed(camera, "http", f"HTTP {status}")
        try:
            check_jpeg(body, headers.get("content-type"))
            ts, source = snapshot_time(headers, body, requested_ns, self.max_skew_s)
            event = frame_event(camera.asset_id, stream.id, ts, body)
        except InvalidEventError as exc:
            return self._reject(camera, str(exc), requested_ns)
        digest = (ts, hashlib.sha256(body).digest())
        self._succeeded(camera, source)
        if digest == camera.last_digest:  # the camera served the same snapshot again: not a new frame
            self.health.count("unchanged")
            return True
        camera.last_digest = digest
        camera.frames += 1
        self.health.count("received")
        self._enqueue(camera, event)
        return True

    def _succeeded(self, camera: CameraState, source: str) -> None:
        if camera.failures:
            log.info("camera %s (%s) is back after %d failed poll(s)", camera.stream.id, camera.url, camera.failures)
            self.health.count("recoveries")
        camera.failures, camera.last_error, camera.time_source = 0, None, source
        camera.last_success_ns = time.time_ns()

    def _failed(self, camera: CameraState, kind: str, reason: str) -> bool:
        """A poll that gave nothing: counted, shown in health, logged when it changes or every ``log_every_s``."""
        camera.failures += 1
        counter = {"timeout": "timeouts", "auth": "auth_failures", "http": "http_errors",
                   "unreachable": "unreachable", "config": "config_errors"}.get(kind)
        if counter is not None:  # a rejected body is counted as "rejected" already
            self.health.count(counter)
        if kind == "unreachable" and camera.failures == 1:
            self.health.count("reconnects")
        changed = reason != camera.last_error
        camera.last_error = reason
        now = time.monotonic()
        if changed or now - camera.last_logged >= self.log_every_s:
            more = f" ({camera.suppressed} similar since)" if camera.suppressed and not changed else ""
            log.warning("camera %s (%s): %s; failure %d in a row%s", camera.stream.id, camera.url, reason,
                        camera.failures, more)
            camera.last_logged = now
            camera.suppressed = 0
        else:
            camera.suppressed += 1
        return False

    def _reject(self, camera: CameraState, reason: str, ts: int) -> bool:
        """A body that is not a usable snapshot: a dead letter (never the bytes) and a failure."""
        camera.letters += 1
        self.health.count("rejected")
        self._enqueue(camera, Letter(camera.url, f"camera {camera.stream.id}: {reason}", ts))
        return self._failed(camera, "rejected", reason)

    # -- sending (at-least-once as far as a camera allows: frames wait in a bounded queue until Kafka has them)

    def _enqueue(self, camera: CameraState, item: Item) -> None:
        before = camera.queue.dropped
        camera.queue.push(item)
        if camera.queue.dropped > before:
            self.health.count("dropped", camera.queue.dropped - before)
        camera.wakeup.set()

    async def _send_loop(self, camera: CameraState) -> None:
        retry_s = 0.5
        while True:
            await camera.wakeup.wait()
            camera.wakeup.clear()
            while len(camera.queue):
                item = camera.queue.pop()
                camera.sending = True
                try:
                    error = await self._deliver(item)
                finally:
                    camera.sending = False
                if error is None:
                    retry_s = 0.5
                    continue
                before = camera.queue.dropped
                camera.queue.put_back(item)
                if camera.queue.dropped > before:
                    self.health.count("dropped")
                log.warning("camera %s: Kafka did not take a snapshot (%s: %s); retrying in %.1f s",
                            camera.stream.id, type(error).__name__, error, retry_s)
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, 30.0)

    async def _deliver(self, item: Item) -> BaseException | None:
        loop = asyncio.get_running_loop()
        acknowledged: asyncio.Future[BaseException | None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if not acknowledged.done():
                acknowledged.set_result(error)

        def done(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(settle, error)

        def send() -> None:
            try:
                if isinstance(item, Letter):
                    self.gateway.dead_letter(item.source, item.error, None, item.ts, done)
                else:
                    self.gateway.send(item, done)
            except (FusewatchError, ValueError, OSError) as exc:  # e.g. a closed producer
                done(exc)

        await loop.run_in_executor(self._sender, send)
        return await acknowledged

    def _update_health(self) -> None:
        self.health.source_connected = any(camera.failures == 0 and camera.last_success_ns is not None
                                           for camera in self.cameras)
        statuses = {camera.stream.id: camera.status() for camera in self.cameras}
        self.health.details["cameras_ok"] = f"{sum(s['ok'] for s in statuses.values())}/{len(statuses)}"
        self.health.details["cameras"] = statuses


def _auth_of(camera: CameraState) -> httpx.Auth | None:
    """The camera's authentication with its password read now (env or file, so a rotated secret is picked up);
    the same object while the password is unchanged, so digest auth reuses the camera's last challenge."""
    stream = camera.stream
    if stream.auth == "none" or stream.username is None:
        return None
    password = stream.password(f"{camera.asset_id}.camera") or ""
    fingerprint = hashlib.sha256(password.encode()).hexdigest()
    if camera.auth is None or camera.auth[0] != fingerprint:
        scheme = httpx.BasicAuth if stream.auth == "basic" else httpx.DigestAuth
        camera.auth = (fingerprint, scheme(stream.username, password))
    return camera.auth[1]


async def _get(client: httpx.AsyncClient, url: str, auth: httpx.Auth | None,
               timeout_s: float) -> tuple[int, httpx.Headers, bytes]:
    """GET ``url``: status, headers and the body (read only for 200, at most ``MAX_FRAME_BYTES``)."""
    async with client.stream("GET", url, auth=auth, timeout=timeout_s,
                             headers={"Accept": "image/jpeg", "Cache-Control": "no-cache"}) as response:
        if response.status_code != 200:
            return response.status_code, response.headers, b""
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_FRAME_BYTES:
                raise InvalidEventError("image", f"larger than {MAX_FRAME_BYTES} bytes")
        return 200, response.headers, bytes(body)
