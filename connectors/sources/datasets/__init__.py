"""Loaders of the real public data sets used in evaluation (fetched from PyPI, pinned, checksummed)."""
