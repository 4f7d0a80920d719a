"""Maintenance: deviation and predictive alerts, work orders, escrowed payment.

Skeleton: filled in by the issue-7 work.
"""

from __future__ import annotations

from twinchain.runtime.framework import Pallet


class Maintenance(Pallet):
    name = "Maintenance"
