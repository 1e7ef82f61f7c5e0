"""A real OPC UA server (asyncua) for the bridge's tests and benchmark, run as a process of its own.

``python tests/integration/opcua_server.py --port P --assets N --start-ns NS --published FILE`` serves, for each
asset ``pump-00``, ``pump-01``, …, the nodes ``ns=2;s=<asset>.Vibration`` (a Float array of ``--samples``
values), ``<asset>.Image`` (ByteString, a JPEG), ``<asset>.Log`` (String) and ``<asset>.SampleRate`` (Double).
Tick ``k`` is written at wall time ``start + k × period`` with the source timestamp ``start + k × period``, so a
restarted server goes on with the tick the clock says; samples come from a generator seeded with (asset, k)
(:func:`samples_of`). Each value written is appended to ``--published`` as a JSON line (asset, modality, k, ts,
sha256 of the float32 samples, image or text bytes) for the test to compare with Kafka.

``--malformed-after N`` writes unreadable values for ``pump-00`` at the N+1st and N+2nd tick it writes instead
(an empty array, a non-image ByteString and a blank text; then an array with a NaN). ``--period 0`` writes ticks
as fast as it can (one ms of event time each). ``--security sign|encrypt`` offers only Basic256Sha256 with Sign
or SignAndEncrypt, with ``--cert``/``--key`` and only the client certificates in ``--trust DIR``; ``--user NAME``
with the password in ``$OPCUA_TEST_PASSWORD`` requires that user. ``--wait-for-client`` holds the first tick until
a client monitors the nodes (a value overwritten before any client saw it is seen by none, and the tests compare
every value). It prints ``ready`` once it serves and stops on SIGTERM or after ``--stop-after`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import io
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
from asyncua import ua
from asyncua.crypto.permission_rules import SimpleRoleRuleset, User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from PIL import Image

SEED = 20261206
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def asset_ids(count: int) -> list[str]:
    return [f"pump-{i:02d}" for i in range(count)]


def samples_of(asset_index: int, k: int, n: int) -> np.ndarray:
    """The float32 samples of an asset's tick ``k``: reproducible from (asset, k)."""
    rng = np.random.default_rng([SEED, asset_index, k])
    return (0.1 * rng.standard_normal(n)).astype(np.float32)


def image_of(asset_index: int, k: int) -> bytes:
    """A small grayscale JPEG of an asset's tick ``k`` (a gradient with seeded noise)."""
    rng = np.random.default_rng([SEED, asset_index, k, 1])
    base = np.add.outer(np.arange(48), np.arange(64)).astype(np.float64) * 2.0
    pixels = np.clip(base + 20.0 * rng.standard_normal(base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def text_of(asset_index: int, k: int) -> str:
    return f"inspection round {k} of pump {asset_index}: bearing temperature normal"


def when(ns: int) -> datetime.datetime:
    return EPOCH + datetime.timedelta(microseconds=ns // 1000)


class Users(UserManager):
    def __init__(self, name: str, password: str) -> None:
        self.name, self.secret = name, password

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        return User(role=UserRole.User) if (username, password) == (self.name, self.secret) else None


async def make_server(args: argparse.Namespace) -> Server:
    users = None if args.user is None else Users(args.user, os.environ["OPCUA_TEST_PASSWORD"])
    server = Server(user_manager=users)
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{args.port}/fusewatch")
    server.set_server_name("fusewatch test server")
    if args.security != "none":
        policy = (ua.SecurityPolicyType.Basic256Sha256_Sign if args.security == "sign"
                  else ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt)
        server.set_security_policy([policy], permission_ruleset=SimpleRoleRuleset())  # type: ignore[no-untyped-call]
        await server.load_certificate(str(args.cert))
        await server.load_private_key(str(args.key))
        from asyncua.crypto.truststore import TrustStore
        from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

        store = TrustStore([args.trust], [])
        await store.load()
        server.set_certificate_validator(CertificateValidator(
            CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT, store))
    if args.user is not None:
        server.set_identity_tokens([ua.UserNameIdentityToken])
    return server


async def serve(args: argparse.Namespace) -> None:
    server = await make_server(args)
    ns = await server.register_namespace("urn:fusewatch:test")
    plant = await server.nodes.objects.add_object(ua.NodeId.from_string(f"ns={ns};s=Plant"), "Plant")
    ids = asset_ids(args.assets)
    nodes: dict[tuple[str, str], Any] = {}
    for asset in ids:
        for name, value, variant in (("Vibration", None, ua.VariantType.Float),  # no value until written
                                     ("Image", None, ua.VariantType.ByteString),
                                     ("Log", None, ua.VariantType.String),
                                     ("SampleRate", float(args.sample_rate), ua.VariantType.Double)):
            initial = ua.Variant() if value is None else ua.Variant(value, variant)
            nodes[asset, name] = await plant.add_variable(ua.NodeId.from_string(f"ns={ns};s={asset}.{name}"),
                                                          f"{asset}.{name}", initial,
                                                          datatype=ua.NodeId.from_string(f"i={variant.value}"))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    published = open(args.published, "a", encoding="utf-8") if args.published else None  # noqa: SIM115
    period_ns = int(args.period * 1e9)
    async with server:
        k = 0 if period_ns == 0 else max(0, -(-(time.time_ns() - args.start_ns) // period_ns))
        first = k
        if k > 0:  # the nodes hold the previous tick's values before the first client comes
            await _publish(published, await write_tick(server, nodes, ids, k - 1, args.start_ns + (k - 1) * period_ns,
                                                       args, None))
        print("ready", flush=True)
        deadline = time.monotonic() + args.stop_after
        if args.wait_for_client:  # hold the values until a client monitors the nodes (one request makes them all)
            while not stop.is_set() and time.monotonic() < deadline and not _monitored(server):
                await asyncio.sleep(0.05)
            if period_ns:
                k = max(k, -(-(time.time_ns() - args.start_ns) // period_ns))
                first = k
        while not stop.is_set() and time.monotonic() < deadline and (args.ticks is None or k - first < args.ticks):
            ts = args.start_ns + (k * period_ns if period_ns else k * 1_000_000)
            if period_ns:
                wait_s = (ts - time.time_ns()) / 1e9
                if wait_s > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), wait_s)
                        break
                    except TimeoutError:
                        pass
            step = None if args.malformed_after is None else k - first - args.malformed_after
            malformed = step if step in (0, 1) else None
            await _publish(published, await write_tick(server, nodes, ids, k, ts, args, malformed))
            k += 1
            if not period_ns:
                await asyncio.sleep(0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.linger)
    if published is not None:
        published.close()


def _monitored(server: Server) -> int:
    subscriptions = server.iserver.subscription_service.subscriptions.values()
    return sum(len(sub.monitored_item_srv._monitored_items) for sub in subscriptions)


async def _publish(published: Any, lines: list[dict[str, Any]]) -> None:
    if published is not None:
        published.write("".join(json.dumps(line) + "\n" for line in lines))
        published.flush()


async def write_tick(server: Server, nodes: dict[tuple[str, str], Any], ids: list[str], k: int, ts: int,
                     args: argparse.Namespace, malformed: int | None) -> list[dict[str, Any]]:
    lines = []
    for index, asset in enumerate(ids):
        values: dict[str, tuple[Any, ua.VariantType]] = {}
        if malformed is not None and index == 0:
            if malformed == 0:
                values["Vibration"] = ([], ua.VariantType.Float)
                values["Image"] = (b"this is not an image", ua.VariantType.ByteString)
                values["Log"] = ("   ", ua.VariantType.String)
            else:
                values["Vibration"] = ([0.5, float("nan"), 0.25], ua.VariantType.Float)
        else:
            samples = samples_of(index, k, args.samples)
            values["Vibration"] = (samples.tolist(), ua.VariantType.Float)
            if args.images:
                values["Image"] = (image_of(index, k), ua.VariantType.ByteString)
            if args.logs:
                values["Log"] = (text_of(index, k), ua.VariantType.String)
        for name, (value, variant) in values.items():
            await server.write_attribute_value(nodes[asset, name].nodeid, ua.DataValue(
                ua.Variant(value, variant), SourceTimestamp=when(ts),  # type: ignore[arg-type]
                ServerTimestamp=datetime.datetime.now(datetime.UTC)))  # type: ignore[arg-type]
            lines.append({"asset": asset, "modality": name, "k": k, "ts": ts,
                          "bad": malformed is not None and index == 0,
                          "sha256": hashlib.sha256(_bytes_of(value)).hexdigest()})
    return lines


def _bytes_of(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, list):
        return np.asarray(value, dtype="<f4").tobytes()
    return repr(value).encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--assets", type=int, default=1)
    parser.add_argument("--samples", type=int, default=25_600)
    parser.add_argument("--sample-rate", type=float, default=25_600.0)
    parser.add_argument("--period", type=float, default=1.0, help="seconds between ticks (0: as fast as possible)")
    parser.add_argument("--start-ns", type=int, default=time.time_ns() // 1_000_000_000 * 1_000_000_000)
    parser.add_argument("--ticks", type=int, default=None, help="ticks to write (then serve --linger s)")
    parser.add_argument("--images", action="store_true")
    parser.add_argument("--logs", action="store_true")
    parser.add_argument("--malformed-after", type=int, default=None, help="ticks before the unreadable values")
    parser.add_argument("--published", type=Path, default=None)
    parser.add_argument("--security", choices=("none", "sign", "encrypt"), default="none")
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--trust", type=Path)
    parser.add_argument("--user", default=None)
    parser.add_argument("--stop-after", type=float, default=600.0)
    parser.add_argument("--wait-for-client", action="store_true",
                        help="write the first tick only once a client monitors the nodes")
    parser.add_argument("--linger", type=float, default=0.0, help="seconds to keep serving after the last tick")
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
