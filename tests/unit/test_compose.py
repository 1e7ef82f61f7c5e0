"""The Docker deployment (deploy/compose, deploy/grafana), checked statically: CI has no Docker engine.

Compose resolves relative paths against the compose file's directory, so every path here is taken relative to
deploy/compose, as ``docker compose -f deploy/compose/docker-compose.yml`` does.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "influxdb.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "fusewatch.yml"

EXPECTED_IMAGES = {
    "kafka": "apache/kafka:4.0.2",
    "influxdb": "influxdb:2.7",
    "grafana": "grafana/grafana-oss:11.3.0",
}
FUSEWATCH_SERVICES = ("topics", "worker-1", "worker-2")
WORKERS = ("worker-1", "worker-2")
DATASOURCE_UID = "fusewatch-influxdb"

Yaml = dict[str, Any]

# Compose interpolation: $$ is a literal $; ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error},
# ${NAME?error}, ${NAME:+alt}, ${NAME+alt} and $NAME read the environment (the --env-file).
_VARIABLE = re.compile(
    r"\$(?:\$|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariableError(ValueError):
    """A required ${NAME:?message} variable is unset or empty."""


# ------------------------------------------------------------------------------------------------ helpers


def load_yaml(path: Path) -> Yaml:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path}: the document is not a mapping"
    return data


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines; blank lines and # comments are skipped, anything else is an error."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        assert match, f"{path.name}:{number}: not NAME=value: {raw!r}"
        assert match[1] not in values, f"{path.name}:{number}: {match[1]} defined twice"
        values[match[1]] = match[2]
    return values


def variables(text: str) -> set[str]:
    """The environment variables a compose string reads."""
    return {m["braced"] or m["plain"] for m in _VARIABLE.finditer(text) if m["braced"] or m["plain"]}


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """The string as compose renders it with the variables in env."""

    def substitute(match: re.Match[str]) -> str:
        name = match["braced"] or match["plain"]
        if name is None:
            return "$"
        op, arg, value = match["op"], match["arg"] or "", env.get(name)
        unset = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if unset else str(value)
        if op in ("?", ":?"):
            if unset:
                raise MissingVariableError(f"{name}: {arg}")
            return str(value)
        if op in ("+", ":+"):
            return "" if unset else arg
        return value or ""

    return _VARIABLE.sub(substitute, text)


def strings(node: object) -> Iterator[str]:
    """Every string value in a parsed YAML document (compose interpolates values, not keys)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def scalar(value: object) -> str:
    """A YAML scalar as the container sees it in its environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def environment(service: Yaml) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): scalar(value) for key, value in env.items()}


def depends_on(service: Yaml) -> dict[str, str]:
    """Service name -> condition (service_started for the short list form)."""
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def is_host_path(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def mounts(service: Yaml) -> list[dict[str, Any]]:
    """The service's volumes in long syntax: type (bind/volume), source, target, read_only."""
    result: list[dict[str, Any]] = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            result.append({"read_only": False, **entry})
            continue
        parts = entry.split(":")
        if len(parts) == 1:  # an anonymous volume: just the container path
            result.append({"type": "volume", "source": None, "target": parts[0], "read_only": False})
            continue
        source, target, *mode = parts
        result.append(
            {
                "type": "bind" if is_host_path(source) else "volume",
                "source": source,
                "target": target,
                "read_only": bool(mode) and "ro" in mode[0].split(","),
            }
        )
    return result


def image_is_pinned(image: str) -> bool:
    """True for ``name:tag`` (tag other than latest) or ``name@sha256:...``; a registry port is not a tag."""
    if "@" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), " ".join(rest.split())))
        pending = ""
    assert not pending, f"{path}: ends inside a continuation line"
    return instructions


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def compose() -> Yaml:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: Yaml) -> dict[str, Yaml]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


# ------------------------------------------------------------------------------------------------ the helpers


def test_variables_and_interpolation_follow_compose() -> None:
    text = "${A:?set A} ${B:-dflt} $C $$D $${E} ${F}"
    assert variables(text) == {"A", "B", "C", "F"}
    assert interpolate(text, {"A": "1", "C": "3", "F": "6"}) == "1 dflt 3 $D ${E} 6"
    assert interpolate("${B:-dflt}/${B-dflt}", {"B": ""}) == "dflt/"
    with pytest.raises(MissingVariableError, match="A: set A"):
        interpolate(text, {"A": ""})
    with pytest.raises(MissingVariableError):
        interpolate("${A?needed}", {})


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("apache/kafka:4.0.2", True),
        ("influxdb@sha256:0123abcd", True),
        ("localhost:5000/fusewatch:1.2", True),
        ("influxdb", False),
        ("influxdb:latest", False),
        ("localhost:5000/fusewatch", False),
    ],
)
def test_image_is_pinned(image: str, pinned: bool) -> None:
    assert image_is_pinned(image) is pinned


def test_mounts_reads_both_syntaxes() -> None:
    service = {"volumes": ["data:/d", "../x:/x:ro", "/cache", {"type": "bind", "source": "./y", "target": "/y"}]}
    assert [(m["type"], m["source"], m["target"], m["read_only"]) for m in mounts(service)] == [
        ("volume", "data", "/d", False),
        ("bind", "../x", "/x", True),
        ("volume", None, "/cache", False),
        ("bind", "./y", "/y", False),
    ]


# ------------------------------------------------------------------------------------------------ compose file


def test_services_and_compose_spec(compose: Yaml, services: dict[str, Yaml]) -> None:
    assert "version" not in compose, "the Compose spec has no top-level version"
    assert set(services) == set(EXPECTED_IMAGES) | set(FUSEWATCH_SERVICES)


def test_images_are_pinned(services: dict[str, Yaml]) -> None:
    for name, image in EXPECTED_IMAGES.items():
        assert services[name].get("image") == image, name
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name}: neither image nor build"
        if "image" in service:
            assert image_is_pinned(service["image"]), f"{name}: image {service['image']!r} is not pinned"


def test_relative_paths_exist(services: dict[str, Yaml]) -> None:
    checked = 0
    for name, service in services.items():
        build = service.get("build")
        if build is not None:
            spec = {"context": build} if isinstance(build, str) else build
            context = COMPOSE_DIR / spec["context"]
            assert context.is_dir(), f"{name}: build context {spec['context']} is not a directory"
            dockerfile = context / spec.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
            assert dockerfile.resolve() == DOCKERFILE.resolve(), f"{name}: builds from {dockerfile}"
            checked += 1
        for mount in mounts(service):
            if mount["type"] == "bind":
                assert not Path(mount["source"]).is_absolute(), f"{name}: {mount['source']} is not portable"
                assert (COMPOSE_DIR / mount["source"]).exists(), f"{name}: bind source {mount['source']} missing"
                checked += 1
        env_files = service.get("env_file", [])
        for entry in [env_files] if isinstance(env_files, str | dict) else env_files:
            spec = {"path": entry} if isinstance(entry, str) else entry
            if spec.get("required", True):
                assert (COMPOSE_DIR / spec["path"]).is_file(), f"{name}: env_file {spec['path']} missing"
                checked += 1
    assert checked >= len(FUSEWATCH_SERVICES) + 4, "fewer paths than the stack has"


def test_depends_on_defined_services(services: dict[str, Yaml]) -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in services, f"{name} depends on undefined service {dependency}"
            assert condition in conditions, f"{name}: unknown condition {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no healthcheck"
    assert depends_on(services["topics"]) == {"kafka": "service_healthy"}
    assert depends_on(services["grafana"]) == {"influxdb": "service_healthy"}
    for worker in WORKERS:
        assert depends_on(services[worker]) == {"topics": "service_completed_successfully"}
    assert services["topics"].get("restart", "no") == "no", "a one-shot service must not restart"


def test_named_volumes_are_declared(compose: Yaml, services: dict[str, Yaml]) -> None:
    declared = set(compose.get("volumes") or {})
    used = {m["source"] for s in services.values() for m in mounts(s) if m["type"] == "volume" and m["source"]}
    assert used, "no named volume used"
    assert used <= declared, f"undeclared volumes: {sorted(used - declared)}"
    assert declared <= used, f"declared, never used: {sorted(declared - used)}"
    for name in ("kafka", "influxdb"):
        assert any(m["type"] == "volume" and m["source"] for m in mounts(services[name])), f"{name} keeps no data"


def test_ports_are_strings(services: dict[str, Yaml]) -> None:
    # YAML 1.1 reads an unquoted 22:22 as the base-60 integer 1342
    published = {name: service.get("ports", []) for name, service in services.items()}
    for name, ports in published.items():
        for port in ports:
            assert isinstance(port, str | dict), f"{name}: quote the port {port!r}"
    assert published["influxdb"] == ["8086:8086"]
    assert published["grafana"] == ["3000:3000"]
    assert published["kafka"] == ["9094:9094"]


def test_kafka_single_node_kraft(services: dict[str, Yaml]) -> None:
    kafka = services["kafka"]
    env = environment(kafka)
    expected = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@kafka:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
    }
    assert {key: env.get(key) for key in expected} == expected
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}

    def listeners(key: str) -> dict[str, str]:
        return dict(item.split("://", 1) for item in env[key].split(","))

    bound, advertised = listeners("KAFKA_LISTENERS"), listeners("KAFKA_ADVERTISED_LISTENERS")
    protocols = dict(item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(bound) <= set(protocols), "a listener without a security protocol"
    assert advertised["PLAINTEXT"] == "kafka:9092"
    assert advertised["EXTERNAL"] == "localhost:9094"
    assert bound["EXTERNAL"].rsplit(":", 1)[1] == "9094"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in bound
    assert bound[env["KAFKA_CONTROLLER_LISTENER_NAMES"]].rsplit(":", 1)[1] == "9093"
    assert env.get("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT") in advertised
    # the image's default log directory is under /tmp: the data must be on the volume
    assert env["KAFKA_LOG_DIRS"] in {m["target"] for m in mounts(kafka) if m["type"] == "volume"}
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_influxdb_setup(services: dict[str, Yaml], example_env: dict[str, str]) -> None:
    influxdb = services["influxdb"]
    env = {key: interpolate(value, example_env) for key, value in environment(influxdb).items()}
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert env["DOCKER_INFLUXDB_INIT_ORG"] == "fusewatch"
    assert env["DOCKER_INFLUXDB_INIT_BUCKET"] == "fusewatch"
    assert env["DOCKER_INFLUXDB_INIT_USERNAME"]
    assert len(env["DOCKER_INFLUXDB_INIT_PASSWORD"]) >= 8, "InfluxDB's setup rejects passwords under 8 characters"
    assert env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    assert "/health" in " ".join(influxdb["healthcheck"]["test"])
    assert {m["target"] for m in mounts(influxdb) if m["type"] == "volume"} >= {"/var/lib/influxdb2"}


def test_fusewatch_services_share_one_image(services: dict[str, Yaml]) -> None:
    first = services[FUSEWATCH_SERVICES[0]]
    for name in FUSEWATCH_SERVICES:
        assert services[name]["build"] == first["build"], name
        assert services[name].get("image") == first.get("image"), name
    assert services["topics"]["command"] == ["topics", "create", "--kafka", "kafka:9092"]


def test_workers(services: dict[str, Yaml]) -> None:
    workers = [services[name] for name in WORKERS]
    assert all(worker == workers[0] for worker in workers), "the workers differ; they should be one anchor"
    command = workers[0]["command"]
    assert command == ["worker", "--kafka", "kafka:9092", "--config", "/etc/fusewatch/fusewatch.toml",
                       "--workdir", "/var/lib/fusewatch"]
    shared = [m for m in mounts(workers[0]) if m["type"] == "volume"]
    assert not shared, "workers share no disk: their state is in the worker-state topic (docs/production.md)"
    # the command is one the installed CLI accepts
    from fusewatch.cli import build_parser

    parsed = build_parser().parse_args(command)
    assert (parsed.command, str(parsed.workdir), parsed.kafka) == ("worker", "/var/lib/fusewatch", "kafka:9092")
    config = command[command.index("--config") + 1]
    binds = {m["target"]: m for m in mounts(workers[0]) if m["type"] == "bind"}
    assert config in binds, "the worker's --config file is not mounted"
    assert binds[config]["read_only"]
    assert (COMPOSE_DIR / binds[config]["source"]).resolve() == REPO / "deploy" / "config" / "fusewatch.example.toml"
    # the bootstrap address is the broker's advertised in-network listener
    kafka_env = environment(services["kafka"])
    assert f"PLAINTEXT://{command[command.index('--kafka') + 1]}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]


def test_env_example_defines_every_variable(compose: Yaml, example_env: dict[str, str]) -> None:
    used = set().union(*(variables(text) for text in strings(compose)))
    assert used, "the compose file reads no variable"
    assert used <= set(example_env), f"not in .env.example: {sorted(used - set(example_env))}"
    assert set(example_env) <= used, f"in .env.example, unused: {sorted(set(example_env) - used)}"
    for text in strings(compose):  # renders as compose would with the example file: no required one is empty
        interpolate(text, example_env)
    with pytest.raises(MissingVariableError):
        for text in strings(compose):
            interpolate(text, {})


# ------------------------------------------------------------------------------------------------ Dockerfile


def test_dockerfile(services: dict[str, Yaml]) -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    assert instructions[0] == ("FROM", "python:3.11-slim")
    context = COMPOSE_DIR / services["topics"]["build"]["context"]
    copied: set[str] = set()
    for keyword, args in instructions:
        if keyword in ("COPY", "ADD"):
            *sources, _ = [arg for arg in args.split() if not arg.startswith("--")]
            for source in sources:
                assert (context / source).exists(), f"COPY {source}: not in the build context"
                copied.add(source.rstrip("/"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in include}
    needed = packages | {"pyproject.toml", project["project"]["readme"]}
    assert needed <= copied, f"the image does not get {sorted(needed - copied)}"

    runs = [args for keyword, args in instructions if keyword == "RUN"]
    cpu_index = "https://download.pytorch.org/whl/cpu"
    torch = next((i for i, run in enumerate(runs) if re.search(r"pip install .*\btorch\b", run)), None)
    project_install = next((i for i, run in enumerate(runs) if re.search(r"pip install .* \.(\s|$)", run)), None)
    assert torch is not None and project_install is not None
    assert f"--index-url {cpu_index}" in runs[torch], "torch must come from the CPU-only index"
    assert torch < project_install, "torch from the CPU index must be installed before the project pulls one in"
    assert f"--extra-index-url {cpu_index}" in runs[project_install]
    assert all("--no-cache-dir" in run for run in runs if "pip install" in run)

    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    entrypoints = [args for keyword, args in instructions if keyword == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["fusewatch"]


# ------------------------------------------------------------------------------------------------ Grafana


def test_grafana_mounts(services: dict[str, Yaml]) -> None:
    grafana = services["grafana"]
    binds = {m["target"]: m for m in mounts(grafana) if m["type"] == "bind"}
    for target, directory in [
        ("/etc/grafana/provisioning", GRAFANA_DIR / "provisioning"),
        ("/var/lib/grafana/dashboards", GRAFANA_DIR / "dashboards"),
    ]:
        assert target in binds, f"grafana: nothing mounted at {target}"
        assert (COMPOSE_DIR / binds[target]["source"]).resolve() == directory
        assert binds[target]["read_only"], f"grafana: {target} should be read-only"


def test_grafana_datasource(services: dict[str, Yaml], example_env: dict[str, str]) -> None:
    document = load_yaml(DATASOURCES)
    assert document["apiVersion"] == 1
    [source] = document["datasources"]
    assert (source["name"], source["uid"], source["type"]) == (DATASOURCE_UID, DATASOURCE_UID, "influxdb")
    assert source["url"] == "http://influxdb:8086"
    assert "influxdb" in services
    json_data = source["jsonData"]
    assert json_data["version"] == "InfluxQL"
    assert json_data["httpMode"] == "POST"
    # InfluxDB 2's virtual DBRP mapping: database = bucket name, retention policy autogen
    assert json_data["dbName"] == environment(services["influxdb"])["DOCKER_INFLUXDB_INIT_BUCKET"]
    assert json_data["httpHeaderName1"] == "Authorization"
    header = source["secureJsonData"]["httpHeaderValue1"]
    match = re.fullmatch(r"Token \$(?:\{(\w+)\}|(\w+))", header)
    assert match, f"the header should be 'Token $VARIABLE', not {header!r}"
    variable = match[1] or match[2]
    grafana_env = environment(services["grafana"])
    assert variable in grafana_env, f"grafana gets no {variable} from compose"
    influx_token = environment(services["influxdb"])["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    assert interpolate(grafana_env[variable], example_env) == interpolate(influx_token, example_env)


def test_grafana_dashboard_provider(services: dict[str, Yaml]) -> None:
    document = load_yaml(DASHBOARD_PROVIDERS)
    assert document["apiVersion"] == 1
    [provider] = document["providers"]
    assert (provider["folder"], provider["type"], provider["allowUiUpdates"]) == ("fusewatch", "file", False)
    assert provider["options"]["path"] in {m["target"] for m in mounts(services["grafana"])}
    for dashboard in sorted((GRAFANA_DIR / "dashboards").glob("*.json")):
        assert isinstance(json.loads(dashboard.read_text()), dict), dashboard.name
