"""Benchmark: performance benchmarks per equipment class, baselines, degradation, peer comparison.

Skeleton: filled in by the issue-7 work.
"""

from __future__ import annotations

from twinchain.runtime.framework import Pallet


class Benchmark(Pallet):
    name = "Benchmark"
