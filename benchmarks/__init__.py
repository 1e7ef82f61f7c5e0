"""fusewatch's benchmarks: ``python -m benchmarks`` (``make bench``) runs them and writes the results.

Each benchmark is a module with a ``run(quick, log)`` function returning a :class:`~benchmarks.run.Result`-shaped
dict (title, method, goal, parameters, tables, figures, notes); :data:`REGISTRY` names them. A new benchmark is
a new module here plus one line in :data:`REGISTRY`. The results go to ``benchmarks/results.json`` and are
rendered into ``docs/benchmarks.md`` (see :mod:`benchmarks.run`).
"""

from __future__ import annotations

import os

# As in `fusewatch` (fusewatch/cli.py): one thread per process for the numeric libraries, set before numpy is
# imported, so CPU seconds measure the work and not idle BLAS threads spinning beside it.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

# name -> module; imported only when the benchmark runs.
REGISTRY: dict[str, str] = {
    "capacity": "benchmarks.capacity",
    "edge_bytes": "benchmarks.edge_bytes",
    "flow_control": "benchmarks.flow_control",
    "ingest": "benchmarks.ingest",
    "kafka_path": "benchmarks.kafka_path",
    "latency": "benchmarks.latency",
    "opcua_bridge": "benchmarks.opcua_bridge",
    "mqtt_bridge": "benchmarks.mqtt_bridge",
    "recovery": "benchmarks.recovery",
    "sink": "benchmarks.sink",
    "state_topic": "benchmarks.state_topic",
    "webhooks": "benchmarks.webhooks",
}
