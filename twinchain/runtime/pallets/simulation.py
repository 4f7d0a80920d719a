"""Simulation: twin models, anchored scenario results, challenges, twin state sync.

Skeleton: filled in by the issue-7 work.
"""

from __future__ import annotations

from twinchain.runtime.framework import Pallet


class Simulation(Pallet):
    name = "Simulation"
