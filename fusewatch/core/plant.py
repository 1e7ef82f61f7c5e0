"""The plant file: a plant's assets and where each of their streams comes from (docs/connect-a-plant.md).

One TOML file describes the plant once. ``fusewatch plant check`` validates it, the worker reads its asset
registry from it (``fusewatch worker --plant``) and the bridges (``fusewatch ingest mqtt|opcua|camera``) and
``fusewatch import`` read their sources from it::

    [plant]
    name = "Riverside pumping station"

    [mqtt]                                   # optional: the broker of the MQTT streams
    url = "mqtt://127.0.0.1:1883"
    topic_template = "plant/{asset_id}/{modality}"

    [[assets]]
    id = "pump-01"
    kind = "pump"
    bearing = { shaft_hz = 29.5, balls = 9, ball_diameter_mm = 7.94, pitch_diameter_mm = 39.04 }
    vibration = { source = "mqtt" }
    logs = { source = "file" }

    [assets.camera]                          # a table of its own when an inline table would be too long
    id = "cam-01"
    source = "http"
    url = "http://10.0.0.7/axis-cgi/jpg/image.cgi"
    auth = "digest"
    username = "viewer"
    password_env = "CAM01_PASSWORD"          # or password_file = "/run/secrets/cam-01"

A bearing is given by its geometry (``balls``, ``ball_diameter_mm``, ``pitch_diameter_mm``, ``contact_angle_deg``),
by its defect-frequency multipliers (``bpfo``, ``bpfi``, ``bsf``, ``ftf``: orders of the shaft speed, as bearing
catalogues list them) or by the frequencies in Hz at that speed (``bpfo_hz``, …). :func:`load_plant` reports
every problem at once, each with the file, line, key and reason:

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "plant.toml"
>>> _ = path.write_text('''
... [[assets]]
... id = "pump-01"
... kind = "pump"
... bearing = { shaft_hz = 29.5, bpfo = 3.57, bpfi = 5.43, bsf = 2.32, ftf = 0.40 }
... vibration = { source = "mqtt" }
... ''')
>>> plant = load_plant(path)
>>> round(plant.registry().bearings("pump-01").bpfo_hz, 2)
105.32
>>> plant.mqtt_topic("pump-01", "vibration")
'plant/pump-01/vibration'
>>> _ = path.write_text('''
... [[assets]]
... id = "pump 01"
... kind = "pump"
... bearing = { shaft_hz = -3, bpfo = 3.57 }
... vibraton = { source = "mqtt" }
... ''')
>>> load_plant(path)
Traceback (most recent call last):
...
fusewatch.core.errors.PlantFileError: .../plant.toml: 3 problems
  .../plant.toml:3: assets[0].id: String should match pattern '^[A-Za-z0-9_.:\\-]+$'
  .../plant.toml:5: assets[0].bearing.shaft_hz: Input should be greater than 0
  .../plant.toml:6: assets[0].vibraton: unknown key
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fusewatch.core.assets import AssetInfo, AssetRegistry, BearingKinematics, geometry_kinematics
from fusewatch.core.errors import ConfigError, PlantFileError, Problem
from fusewatch.core.events import AssetId
from fusewatch.core.secrets import read_secret

PlantModality = Literal["vibration", "frame", "log"]
"""The modality names of MQTT topics and of the plant file's stream tables (``{modality}`` in topic templates)."""

Positive = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=128)]
DEFAULT_TEMPLATE = "plant/{asset_id}/{modality}"


def check_template(template: str) -> None:
    """A topic template names ``{asset_id}`` and ``{modality}`` once each, and no other field."""
    fields = re.findall(r"{([^{}]*)}", template)
    if sorted(fields) != ["asset_id", "modality"]:
        raise ValueError(f"topic_template must contain {{asset_id}} and {{modality}} once each, got {template!r}")
    if "+" in template or "#" in template:
        raise ValueError("topic_template must not contain MQTT wildcards (+, #)")


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Credentials(_Table):
    """A user name and where its password is: an environment variable or a file (read when connecting)."""

    username: Name | None = None
    password_env: Name | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_password(self) -> Credentials:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give password_env or password_file, not both")
        if self.username is None and (self.password_env is not None or self.password_file is not None):
            raise ValueError("a password needs a username")
        return self

    def password(self, where: str) -> str | None:
        """The password, read now (a rotated file is picked up); :class:`ConfigError` if it cannot be read."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"{where}.password_env: the environment variable {self.password_env} is not set")
            return value
        return read_secret(None, self.password_file, f"{where}.password")


class Bearing(_Table):
    """Shaft speed and the bearing: geometry, defect-frequency multipliers or frequencies in Hz (one of them)."""

    shaft_hz: Positive
    balls: Annotated[int, Field(ge=3, le=100)] | None = None
    ball_diameter_mm: Positive | None = None
    pitch_diameter_mm: Positive | None = None
    contact_angle_deg: Annotated[float, Field(ge=0.0, lt=90.0)] = 0.0
    bpfo: Positive | None = None
    bpfi: Positive | None = None
    bsf: Positive | None = None
    ftf: Positive | None = None
    bpfo_hz: Positive | None = None
    bpfi_hz: Positive | None = None
    bsf_hz: Positive | None = None
    ftf_hz: Positive | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Bearing:
        forms = {"geometry": ("balls", "ball_diameter_mm", "pitch_diameter_mm"),
                 "multipliers": ("bpfo", "bpfi", "bsf", "ftf"),
                 "frequencies": ("bpfo_hz", "bpfi_hz", "bsf_hz", "ftf_hz")}
        given = {form: [key for key in keys if getattr(self, key) is not None] for form, keys in forms.items()}
        used = [form for form, keys in given.items() if keys]
        if len(used) != 1:
            raise ValueError("give the bearing's geometry (balls, ball_diameter_mm, pitch_diameter_mm), its"
                             " multipliers (bpfo, bpfi, bsf, ftf) or its frequencies (bpfo_hz, …): exactly one"
                             + ("" if not used else f"; found {' and '.join(used)}"))
        missing = [key for key in forms[used[0]] if key not in given[used[0]]]
        if missing:
            raise ValueError(f"the bearing's {used[0]} lacks {', '.join(missing)}")
        if used[0] == "geometry" and self.ball_diameter_mm >= self.pitch_diameter_mm:  # type: ignore[operator]
            raise ValueError("ball_diameter_mm must be smaller than pitch_diameter_mm")
        return self

    def kinematics(self) -> BearingKinematics:
        """The defect frequencies at ``shaft_hz`` (geometry: stationary outer race)."""
        f = self.shaft_hz
        if self.balls is not None:
            return geometry_kinematics(f, self.balls, self.ball_diameter_mm,  # type: ignore[arg-type]
                                       self.pitch_diameter_mm, self.contact_angle_deg)  # type: ignore[arg-type]
        if self.bpfo is not None:
            return BearingKinematics(f, self.bpfo * f, self.bpfi * f, self.bsf * f, self.ftf * f)  # type: ignore[operator]
        return BearingKinematics(f, self.bpfo_hz, self.bpfi_hz, self.bsf_hz, self.ftf_hz)  # type: ignore[arg-type]


class Stream(_Table):
    """Where one stream of an asset comes from.

    ``mqtt``: a topic (default: the plant's template); ``opcua``: a node id (``ns=2;s=Pump01.Vibration``) on the
    plant's OPC UA server or on ``url``; ``http`` (cameras): a snapshot URL polled every ``interval_s``; ``file``:
    brought in by ``fusewatch import``.
    """

    source: Literal["mqtt", "opcua", "http", "file"]
    topic: Name | None = None
    node: Name | None = None
    url: Name | None = None


class VibrationStream(Stream):
    """An accelerometer: its sensor id and unit; over OPC UA the sample rate (a number or a node)."""

    source: Literal["mqtt", "opcua", "file"]
    sensor_id: Name = "acc-1"
    unit: Literal["g", "m/s^2"] = "g"
    sample_rate_hz: Positive | None = None
    sample_rate_node: Name | None = None

    @model_validator(mode="after")
    def _opcua_needs(self) -> VibrationStream:
        if self.source == "opcua":
            if self.node is None:
                raise ValueError("an OPC UA vibration stream needs node (the float-array node)")
            if (self.sample_rate_hz is None) == (self.sample_rate_node is None):
                raise ValueError("an OPC UA vibration stream needs sample_rate_hz or sample_rate_node (one)")
        return self


class CameraStream(Stream, Credentials):
    """A camera: its id; an ``http`` camera's snapshot URL, poll interval, timeout and authentication."""

    id: Name
    source: Literal["mqtt", "opcua", "http", "file"]
    interval_s: Positive = 60.0
    timeout_s: Positive = 10.0
    auth: Literal["none", "basic", "digest"] = "none"

    @model_validator(mode="after")
    def _http_needs(self) -> CameraStream:
        if self.source == "http":
            if self.url is None or not re.match(r"^https?://", self.url):
                raise ValueError("an http camera needs url, an http:// or https:// snapshot URL")
            if (self.auth == "none") != (self.username is None):
                raise ValueError("auth 'basic' or 'digest' goes with a username, and 'none' without")
        elif self.source == "opcua" and self.node is None:
            raise ValueError("an OPC UA camera needs node (the ByteString image node)")
        return self


class LogStream(Stream):
    """Maintenance logs: a topic, an OPC UA String node, or files (CMMS exports)."""

    author: Name | None = None

    @model_validator(mode="after")
    def _opcua_needs(self) -> LogStream:
        if self.source == "opcua" and self.node is None:
            raise ValueError("an OPC UA log stream needs node (the String node)")
        if self.source == "http":
            raise ValueError("logs come from mqtt, opcua or file")
        return self


class Asset(_Table):
    """One machine: id, kind, bearing and its streams."""

    id: AssetId
    kind: Name
    bearing: Bearing | None = None
    vibration: VibrationStream | None = None
    camera: CameraStream | None = None
    logs: LogStream | None = None


class PlantInfo(_Table):
    name: Name = "plant"


class Mqtt(Credentials):
    """The MQTT broker: URL (``mqtt://`` or ``mqtts://``), topic template, client id and session expiry."""

    url: Name = "mqtt://127.0.0.1:1883"
    topic_template: Name = DEFAULT_TEMPLATE
    client_id: Name = "fusewatch-bridge"
    session_expiry_s: Annotated[int, Field(ge=0)] = 7 * 86_400

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not re.match(r"^mqtts?://[^/:]+(:\d+)?/?$", url):
            raise ValueError(f"must look like mqtt://HOST:PORT or mqtts://HOST:PORT, got {url!r}")
        return url

    @field_validator("topic_template")
    @classmethod
    def _check_template(cls, template: str) -> str:
        check_template(template)
        return template


class Opcua(Credentials):
    """The OPC UA server: endpoint URL, security policy and mode, the client's certificate and key."""

    url: Name
    security_policy: Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    server_certificate: Path | None = None
    publishing_interval_ms: Annotated[int, Field(ge=10)] = 100

    @model_validator(mode="after")
    def _check(self) -> Opcua:
        if not self.url.startswith("opc.tcp://"):
            raise ValueError(f"url must start with opc.tcp://, got {self.url!r}")
        if (self.security_mode == "None") != (self.security_policy == "None"):
            raise ValueError("security_mode and security_policy are both 'None' or both set")
        if self.security_mode != "None" and (self.certificate is None or self.private_key is None):
            raise ValueError(f"security_mode {self.security_mode} needs certificate and private_key")
        return self


class Plant(_Table):
    """A validated plant file."""

    plant: PlantInfo = Field(default_factory=PlantInfo)
    mqtt: Mqtt = Field(default_factory=Mqtt)
    opcua: Opcua | None = None
    assets: list[Asset] = Field(default_factory=list)

    def asset(self, asset_id: str) -> Asset | None:
        return next((asset for asset in self.assets if asset.id == asset_id), None)

    def stream(self, asset: Asset, modality: PlantModality) -> Stream | None:
        return {"vibration": asset.vibration, "frame": asset.camera, "log": asset.logs}[modality]

    def mqtt_topic(self, asset_id: str, modality: PlantModality) -> str | None:
        """The MQTT topic of an asset's stream, or ``None`` if that stream does not come over MQTT."""
        asset = self.asset(asset_id)
        stream = None if asset is None else self.stream(asset, modality)
        if stream is None or stream.source != "mqtt":
            return None
        return stream.topic or self.mqtt.topic_template.format(asset_id=asset_id, modality=modality)

    def registry(self) -> AssetRegistry:
        """The worker's asset registry: every asset with its kind and (when given) bearing kinematics."""
        return AssetRegistry({a.id: AssetInfo(a.kind, None if a.bearing is None else a.bearing.kinematics())
                              for a in self.assets})


def load_plant(path: str | Path) -> Plant:
    """Read and validate a plant file; :class:`PlantFileError` lists every problem with its line and key."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlantFileError(file, [Problem(file, 0, "", f"cannot read the file ({exc.strerror or exc})")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise PlantFileError(file, [Problem(file, int(match.group(1)) if match else 0, "",
                                            f"not valid TOML ({exc})")]) from None
    lines = _key_lines(text)
    found: list[tuple[tuple[Any, ...], str]] = []
    plant = None
    try:
        plant = Plant.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            reason = "unknown key" if error["type"] == "extra_forbidden" else str(error["msg"])
            found.append((tuple(error["loc"]), reason.removeprefix("Value error, ")))
    found += _duplicate_ids(data)
    if plant is not None:
        found += _cross_checks(plant)
    if found:
        problems = [Problem(file, _line_of(lines, loc), _dotted(loc), reason) for loc, reason in found]
        raise PlantFileError(file, sorted(problems, key=lambda problem: problem.line))
    assert plant is not None
    return plant


def _duplicate_ids(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    assets = data.get("assets")
    seen: dict[object, int] = {}
    found = []
    for index, asset in enumerate(assets if isinstance(assets, list) else []):
        ident = asset.get("id") if isinstance(asset, dict) else None
        if ident is not None and ident in seen:
            found.append((("assets", index, "id"), f"{ident!r} is listed already as assets[{seen[ident]}]"))
        seen.setdefault(ident, index)
    return found


def _cross_checks(plant: Plant) -> list[tuple[tuple[Any, ...], str]]:
    """What no single table shows: a missing [opcua] server, two streams on one MQTT topic."""
    found: list[tuple[tuple[Any, ...], str]] = []
    topics: dict[str, tuple[str, str]] = {}
    for index, asset in enumerate(plant.assets):
        for modality, key in (("vibration", "vibration"), ("frame", "camera"), ("log", "logs")):
            stream = plant.stream(asset, modality)  # type: ignore[arg-type]
            if stream is None:
                continue
            if stream.source == "opcua" and stream.url is None and plant.opcua is None:
                found.append((("assets", index, key, "source"),
                              "reads an OPC UA node, but there is no [opcua] table with the server's url"))
            topic = plant.mqtt_topic(asset.id, modality)  # type: ignore[arg-type]
            if topic is not None and topics.setdefault(topic, (asset.id, key)) != (asset.id, key):
                owner, stream_key = topics[topic]
                found.append((("assets", index, key), f"MQTT topic {topic!r} is {owner}'s {stream_key} already"))
    return found


def load_registry(path: str | Path) -> AssetRegistry:
    """An asset registry from a plant file (``.toml``) or from the older registry JSON (``--assets-file``)."""
    if Path(path).suffix.lower() == ".toml":
        return load_plant(path).registry()
    return AssetRegistry.load(path)


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")
_INLINE_KEY = re.compile(r"([A-Za-z0-9_\-]+)\s*=")


def _key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Where each table and key of a TOML text starts: a path like ``("assets", 1, "bearing", "shaft_hz")`` → line."""
    lines: dict[tuple[Any, ...], int] = {}
    arrays: dict[tuple[Any, ...], int] = {}
    table: tuple[Any, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            path: tuple[Any, ...] = ()
            names = [name.strip().strip("\"'") for name in header.group(2).split(".")]
            for name in names[:-1]:
                path += (name,) + ((arrays[(*path, name)],) if (*path, name) in arrays else ())
            path += (names[-1],)
            if header.group(1) == "[[":
                arrays[path] = arrays.get(path, -1) + 1
                path += (arrays[path],)
            table = path
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            path = table + tuple(part.strip("\"'") for part in key.group(1).split("."))
            lines.setdefault(path, number)
            for inner in _INLINE_KEY.findall(line[key.end():]):  # keys of an inline table on the same line
                lines.setdefault((*path, inner), number)
    return lines


def _line_of(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int:
    """The line of the longest prefix of ``loc`` that the text names (0 if none)."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 0
