"""A real OPC UA server (asyncua) that plays recorded vibration snapshots, for the connect-a-plant test.

``python tests/integration/opcua_playback.py --port P --npz FILE [--period S]`` reads ``asset_id`` (a string),
``ts`` (int64 nanoseconds) and ``samples`` (float32, one row per snapshot) from FILE and serves the Float array
node ``ns=2;s=<asset_id>.Vibration``: its value is snapshot 0 from the start (as a PLC's node holds its last
snapshot), and snapshot k ≥ 1 is written with the source timestamp ``ts[k]`` once a client monitors the node,
one every ``--period`` seconds. It prints ``ready`` once it serves, ``done`` after the last
snapshot, and stops on SIGTERM or after ``--stop-after`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import signal

import numpy as np
from asyncua import ua
from asyncua.server.server import Server

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


async def serve(port: int, npz: str, period: float, stop_after: float) -> None:
    data = np.load(npz)
    asset_id, stamps, samples = str(data["asset_id"]), data["ts"], data["samples"]
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/playback/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    index = await server.register_namespace("urn:fusewatch:test:playback")
    assert index == 2, index
    folder = await server.nodes.objects.add_folder(index, "Plant")
    name = f"{asset_id}.Vibration"
    node = await folder.add_variable(ua.NodeId.from_string(f"ns={index};s={name}"), name,
                                     ua.Variant([0.0], ua.VariantType.Float))
    await server.write_attribute_value(node.nodeid, _value(samples[0], int(stamps[0])))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        print("ready", flush=True)
        deadline = loop.time() + stop_after
        while not stop.is_set() and loop.time() < deadline:  # wait for a client's subscription
            subscriptions = server.iserver.subscription_service.subscriptions
            if any(sub.monitored_item_srv._monitored_items for sub in subscriptions.values()):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        for k in range(1, len(stamps)):
            if stop.is_set():
                break
            await server.write_attribute_value(node.nodeid, _value(samples[k], int(stamps[k])))
            await asyncio.sleep(period)
        print("done", flush=True)
        while not stop.is_set() and loop.time() < deadline:
            await asyncio.sleep(0.1)


def _value(samples: np.ndarray, ts_ns: int) -> ua.DataValue:
    when = EPOCH + datetime.timedelta(microseconds=ts_ns // 1000)
    return ua.DataValue(ua.Variant(samples.tolist(), ua.VariantType.Float), SourceTimestamp=when,  # type: ignore[arg-type]
                        ServerTimestamp=datetime.datetime.now(datetime.UTC))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--npz", required=True)
    parser.add_argument("--period", type=float, default=0.1)
    parser.add_argument("--stop-after", type=float, default=600.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.npz, args.period, args.stop_after))


if __name__ == "__main__":
    main()
