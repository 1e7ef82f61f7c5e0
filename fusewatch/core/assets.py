"""The asset registry: which assets a deployment watches, and their bearing defect frequencies.

A JSON file ``{"assets": {"pump-01": {"kind": "pump", "shaft_hz": 29.5, "bpfo_hz": …, "bpfi_hz": …,
"bsf_hz": …, "ftf_hz": …}, …}}``. The worker scores only registered assets when it is given one (messages of
other assets become dead letters, reason ``unknown asset``), and computes envelope-spectrum lines at each
asset's defect frequencies. ``fusewatch simulate --assets-file FILE`` writes the simulated plant's registry.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "assets.json"
>>> registry = AssetRegistry({"pump-01": AssetInfo("pump", 29.5, 105.2, 160.1, 68.3, 11.7)})
>>> registry.save(path)
>>> loaded = AssetRegistry.load(path)
>>> "pump-01" in loaded, "pump-02" in loaded
(True, False)
>>> loaded.bearings("pump-01").bpfo_hz
105.2
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from fusewatch.core.errors import ConfigError
from models.vibration import BearingFrequencies


@dataclass(frozen=True)
class AssetInfo:
    """One asset's kind and bearing frequencies (Hz)."""

    kind: str
    shaft_hz: float
    bpfo_hz: float
    bpfi_hz: float
    bsf_hz: float
    ftf_hz: float


class AssetRegistry:
    """Assets by id."""

    def __init__(self, assets: dict[str, AssetInfo]) -> None:
        self.assets = dict(assets)

    def __contains__(self, asset_id: object) -> bool:
        return asset_id in self.assets

    def bearings(self, asset_id: str) -> BearingFrequencies | None:
        info = self.assets.get(asset_id)
        if info is None:
            return None
        return BearingFrequencies(info.shaft_hz, info.bpfo_hz, info.bpfi_hz, info.bsf_hz, info.ftf_hz)

    def save(self, path: str | Path) -> None:
        data = {"assets": {asset_id: asdict(info) for asset_id, info in sorted(self.assets.items())}}
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
        for asset_id, fields in data["assets"].items():
            try:
                assets[asset_id] = AssetInfo(
                    kind=str(fields["kind"]), **{k: float(fields[k]) for k in
                                                 ("shaft_hz", "bpfo_hz", "bpfi_hz", "bsf_hz", "ftf_hz")})
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"{path}: assets.{asset_id}: missing or invalid {exc}") from None
        return cls(assets)
