"""Marks shared by the scenario tests."""

from __future__ import annotations

import pytest

# Scenarios that boot a nested Xen host hold a machine-wide Xen-host slot (lab.capacity) while they run.
XEN_HOST = pytest.mark.usefixtures("xen_host_slot")
