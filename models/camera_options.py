"""The camera model's option types, apart from the model so that reading a configuration does not load torch."""

from __future__ import annotations

from typing import Literal

Normalization = Literal["standardize", "gain"]
ErrorKind = Literal["squared", "darker"]
CameraModelKind = Literal["autoencoder", "background"]
