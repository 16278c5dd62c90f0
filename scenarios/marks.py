"""Marks shared by the scenario tests."""

from __future__ import annotations

import pytest

# Scenarios that boot a nested Xen host hold a machine-wide Xen-host slot (lab.capacity) while they run.
XEN_HOST = pytest.mark.usefixtures("xen_host_slot")

# What this process runs after an item (None: nothing), stashed on it by scenarios/conftest.py.
NEXT_ITEM = pytest.StashKey["pytest.Item | None"]()
