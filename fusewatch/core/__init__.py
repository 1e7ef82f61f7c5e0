"""The contracts of fusewatch: events, wire codec, errors, time, topics, assets, history, output messages and the
Kafka settings. Every other layer may import them; they import nothing else of fusewatch (docs/architecture.md).
"""

from __future__ import annotations

__version__ = "0.1.0"
"""fusewatch's version: part of every score's ``model_version`` and of ``fusewatch --version``."""
