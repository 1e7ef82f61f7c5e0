"""The asset registry: which assets a deployment watches, and their bearing kinematics.

:class:`BearingKinematics` is the one bearing type of fusewatch: the simulator computes it from a bearing's
geometry, the vibration features look for envelope lines at its frequencies, and the registry stores it per asset.

The registry file is JSON, ``{"assets": {"pump-01": {"kind": "pump", "shaft_hz": 29.5, "bpfo_hz": …, "bpfi_hz": …,
"bsf_hz": …, "ftf_hz": …}, …}}``. The worker scores only registered assets when it is given one (messages of
other assets become dead letters, reason ``unknown asset``), and computes envelope-spectrum lines at each
asset's defect frequencies. ``fusewatch simulate --assets-file FILE`` writes the simulated plant's registry.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "assets.json"
>>> registry = AssetRegistry({"pump-01": AssetInfo("pump", BearingKinematics(29.5, 105.2, 160.1, 68.3, 11.7))})
>>> registry.save(path)
>>> loaded = AssetRegistry.load(path)
>>> "pump-01" in loaded, "pump-02" in loaded
(True, False)
>>> loaded.bearings("pump-01").bpfo_hz, loaded.kind("pump-01")
(105.2, 'pump')
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from fusewatch.core.errors import ConfigError


@dataclass(frozen=True)
class BearingKinematics:
    """Shaft speed and the characteristic defect frequencies of a rolling-element bearing at that speed, in Hz."""

    shaft_hz: float
    bpfo_hz: float
    bpfi_hz: float
    bsf_hz: float
    ftf_hz: float


_FREQUENCIES = tuple(field.name for field in fields(BearingKinematics))


def geometry_kinematics(shaft_hz: float, n_balls: int, ball_diameter_mm: float, pitch_diameter_mm: float,
                        contact_angle_deg: float) -> BearingKinematics:
    """The fault frequencies of a ball bearing from its geometry, shaft turning at ``shaft_hz`` (stationary outer race).

    With :math:`r = (d/D)\\cos\\alpha`: FTF = f/2 (1 - r), BPFO = n f/2 (1 - r), BPFI = n f/2 (1 + r),
    BSF = D/(2d) f (1 - r^2).

    >>> round(geometry_kinematics(30.0, 9, 7.94, 39.04, 0.0).bpfo_hz, 2)
    107.54
    """
    ratio = ball_diameter_mm / pitch_diameter_mm * math.cos(math.radians(contact_angle_deg))
    half = shaft_hz / 2.0
    return BearingKinematics(
        shaft_hz=shaft_hz,
        bpfo_hz=n_balls * half * (1.0 - ratio),
        bpfi_hz=n_balls * half * (1.0 + ratio),
        bsf_hz=pitch_diameter_mm / (2.0 * ball_diameter_mm) * shaft_hz * (1.0 - ratio * ratio),
        ftf_hz=half * (1.0 - ratio),
    )


@dataclass(frozen=True)
class AssetInfo:
    """One asset's kind and bearing kinematics (``None``: unknown, the envelope lines are left out)."""

    kind: str
    bearing: BearingKinematics | None


class AssetRegistry:
    """Assets by id."""

    def __init__(self, assets: dict[str, AssetInfo]) -> None:
        self.assets = dict(assets)

    def __contains__(self, asset_id: object) -> bool:
        return asset_id in self.assets

    def kind(self, asset_id: str) -> str | None:
        """The asset's kind (``None``: not registered)."""
        info = self.assets.get(asset_id)
        return None if info is None else info.kind

    def bearings(self, asset_id: str) -> BearingKinematics | None:
        info = self.assets.get(asset_id)
        return None if info is None else info.bearing

    def save(self, path: str | Path) -> None:
        data = {"assets": {asset_id: {"kind": info.kind, **({} if info.bearing is None else asdict(info.bearing))}
                           for asset_id, info in sorted(self.assets.items())}}
        Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> AssetRegistry:
        """Read a registry; :class:`ConfigError` names the file, the asset and the problem."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: file not found") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("assets"), dict):
            raise ConfigError(f"{path}: expected an object with an 'assets' object")
        assets = {}
        for asset_id, entry in data["assets"].items():
            try:
                given = [name for name in _FREQUENCIES if name in entry]
                bearing = (BearingKinematics(**{name: float(entry[name]) for name in _FREQUENCIES})
                           if given else None)
                assets[asset_id] = AssetInfo(kind=str(entry["kind"]), bearing=bearing)
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"{path}: assets.{asset_id}: missing or invalid {exc}") from None
        return cls(assets)
