"""The chaos suite's network and clean-up on their own (no nodes): namespaces reach each
other over the bridge, a partition cuts exactly the pairs across it and heals, link down
cuts a validator off, and what a killed run left behind (namespaces, bridge, tmpfs mounts,
processes) is swept by the next run. Root and network namespaces needed (skipped otherwise).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from twinchain.devnet.chaos import faults as fx
from twinchain.devnet.chaos import runner
from twinchain.devnet.chaos.netns import Network, free_subnet, leftover_runs, probe

PORT = 18777


@pytest.fixture
def net() -> Iterator[Network]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    why = probe()
    if why is not None:
        pytest.skip(f"network namespaces unavailable: {why}")
    n = Network(secrets.token_hex(3), 3, free_subnet(random.Random()))
    n.setup()
    try:
        yield n
    finally:
        n.teardown()


def _listen(net: Network, i: int) -> subprocess.Popen[bytes]:
    code = (
        "import socket,sys;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        f"s.bind(('{net.host(i)}',{PORT}));s.listen(16)\n"
        "while True:\n c,_=s.accept();c.close()"
    )
    p = subprocess.Popen([*net.wrap(i), sys.executable, "-c", code])
    time.sleep(0.5)
    return p


def _reach(net: Network | None, src: int | None, dst: str) -> bool:
    code = (
        "import socket,sys\ntry:\n socket.create_connection((sys.argv[1],"
        f"{PORT}),timeout=1.5).close()\nexcept OSError: sys.exit(1)"
    )
    wrap = net.wrap(src) if net is not None and src is not None else []
    return subprocess.run([*wrap, sys.executable, "-c", code, dst]).returncode == 0


def test_partition_and_link_cut_exactly_what_they_should(net: Network) -> None:
    servers = [_listen(net, i) for i in range(3)]
    try:
        assert all(_reach(net, 0, net.host(j)) for j in (1, 2))
        assert _reach(None, None, net.host(1))  # the root namespace (gateways) reaches them
        net.partition([[0, 1], [2]])
        assert _reach(net, 0, net.host(1))
        assert not _reach(net, 0, net.host(2))
        assert not _reach(net, 2, net.host(1))
        assert _reach(None, None, net.host(2))  # RPC from the root namespace stays up
        net.heal()
        assert _reach(net, 0, net.host(2)) and _reach(net, 2, net.host(1))
        net.link(1, False)
        assert not _reach(net, 0, net.host(1)) and not _reach(None, None, net.host(1))
        net.link(1, True)
        time.sleep(0.5)
        assert _reach(net, 0, net.host(1))
    finally:
        for s in servers:
            s.kill()
            s.wait()


def test_a_killed_runs_leftovers_are_swept(tmp_path: Path) -> None:
    if os.geteuid() != 0 or probe() is not None:
        pytest.skip("needs root and network namespaces")
    rid = secrets.token_hex(3)
    net = Network(rid, 2, free_subnet(random.Random()))
    net.setup()
    disk = fx.Disk(tmp_path / "db", 8)
    disk.mount()
    # A stand-in "node" whose command line names twinchain, and a harness pid that is gone.
    node = subprocess.Popen(
        [*net.wrap(0), sys.executable, "-c", "import time; time.sleep(600)", "twinchain"]
    )
    dead = subprocess.Popen(["true"])
    dead.wait()
    runner.STATE_DIR.mkdir(parents=True, exist_ok=True)
    state = {"run_id": rid, "harness": dead.pid, "count": 2, "mounts": [str(disk.path)],
             "pids": [node.pid]}  # fmt: skip
    (runner.STATE_DIR / f"{rid}.json").write_text(json.dumps(state))
    try:
        assert rid in leftover_runs()
        assert rid in runner.sweep_stale()
        assert node.wait(10) != 0
        assert rid not in leftover_runs()
        assert str(disk.path) not in Path("/proc/mounts").read_text()
        assert not (runner.STATE_DIR / f"{rid}.json").exists()
    finally:
        node.kill()
        disk.unmount()
        net.teardown()


def test_disk_fill_gives_enospc_and_free_gives_the_space_back(tmp_path: Path) -> None:
    why = fx.can_mount_tmpfs(tmp_path / "probe")
    if why is not None:
        pytest.skip(why)
    disk = fx.Disk(tmp_path / "db", 64)
    disk.mount()
    try:
        (disk.path / "data").write_bytes(b"x" * (1 << 20))
        disk.fill()
        with pytest.raises(OSError, match="No space left"):
            with open(disk.path / "more", "wb") as fh:
                fh.write(b"y" * (1 << 20))
                fh.flush()
                os.fsync(fh.fileno())
        disk.free()
        (disk.path / "more").write_bytes(b"y" * (8 << 20))
        assert (disk.path / "data").read_bytes() == b"x" * (1 << 20)
    finally:
        disk.unmount()
