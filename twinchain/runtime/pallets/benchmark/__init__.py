"""Benchmark: performance benchmarks per equipment class, baselines, degradation, peer comparison.

``types`` holds the records and bounds, ``arithmetic`` the integer arithmetic of window values
and deviations, ``features/`` the class specs, the drift and peer ranking, and the targets
Maintenance measures against, and ``pallet`` the pallet itself (storage, events, errors,
genesis); see its docstring.
"""

from twinchain.runtime.pallets.benchmark.pallet import Benchmark

__all__ = ["Benchmark"]
