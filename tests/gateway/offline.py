"""A gateway whose node is unreachable (nothing listens on port 9): it spools, cuts and signs
while offline, which is what the gateway's unit tests drive by hand."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twinchain.gateway import config as gwconfig
from twinchain.gateway.core import Gateway
from twinchain.gateway.provision import write_gateway
from twinchain.machines.simulator import MachineConfig

TWO_MACHINES = (MachineConfig("m1", "cnc_mill"), MachineConfig("m2", "pump"))


def offline_gateway(
    tmp: Path,
    machines: Sequence[MachineConfig] = TWO_MACHINES,
    first_twin: int = 0,
    **batching: Any,
) -> Gateway:
    """A gateway of ``machines`` (twins from ``first_twin``), ``batching`` overriding its
    defaults, provisioned in ``tmp`` and pointed at a node that never answers."""
    p = write_gateway(
        tmp,
        node="http://127.0.0.1:9",
        machines=list(machines),
        first_twin=first_twin,
        realtime=False,
        batching=batching or None,
    )
    return Gateway(gwconfig.load(p.config))
