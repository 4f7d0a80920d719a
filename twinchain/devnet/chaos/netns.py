"""Validators as separate hosts: a network namespace each, a veth pair to one bridge.

Per run (names carry the run id, so parallel runs never collide; interface names stay under
Linux's 15 characters)::

    root namespace:  bridge tcb<id> 10.77.<s>.254/24   veth tcv<id><i> (enslaved to it)
    namespace tc-<id>-<i>:  eth0 (the veth's peer) 10.77.<s>.<i+1>/24, netem on its egress

``<s>`` is a /24 no other interface of this machine uses. Gateways stay in the root
namespace and reach their validator's RPC over the bridge. Netem sits on the validator's side
of its link only, so every packet a validator sends (to a peer or to its gateway) is delayed
once, not twice. A partition is a set of blackhole routes in the namespaces (a packet to the
other side is dropped silently, as a cut cable would); healing deletes them. Link down/up
flips the root-side veth.
"""

from __future__ import annotations

import logging
import random
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

log = logging.getLogger("twinchain.chaos")


class NetnsUnavailable(Exception):
    """Network namespaces cannot be made here (not root, no ``ip``, no kernel support)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def probe() -> str | None:
    """None if namespaces work here, else why not (a throwaway namespace is made and removed)."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    if shutil.which("tc") is None:
        return "the `tc` command (iproute2) is missing"
    name = f"tc-probe-{random.getrandbits(24):06x}"
    r = _ip("netns", "add", name, check=False)
    if r.returncode != 0:
        return f"`ip netns add` fails: {r.stderr.strip() or 'not permitted'}"
    _ip("netns", "del", name, check=False)
    return None


def free_subnet(rng: random.Random) -> int:
    """A third octet ``s`` with 10.77.s.0/24 unused by any interface here."""
    used = set(re.findall(r"inet 10\.77\.(\d+)\.", _ip("-4", "-o", "addr").stdout))
    free = [s for s in range(1, 250) if str(s) not in used]
    if not free:
        raise NetnsUnavailable("no free 10.77.x.0/24 subnet")
    return rng.choice(free)


@dataclass
class Netem:
    delay_ms: int = 50
    jitter_ms: int = 20
    loss_pct: float = 1.0

    def args(self) -> list[str]:
        out = ["delay", f"{self.delay_ms}ms"]
        if self.jitter_ms:
            out.append(f"{self.jitter_ms}ms")
        if self.loss_pct:
            out += ["loss", f"{self.loss_pct}%"]
        return out


@dataclass
class Network:
    """The namespaces, veths and bridge of one chaos run (``setup`` / ``teardown``)."""

    run_id: str
    count: int
    subnet: int
    netem: Netem | None = None
    #: Why netem could not be set (None: it is on every link, or was not asked for).
    netem_error: str | None = None
    #: Without netem: the loss (percent) nftables drops on every validator's link instead.
    nft_loss_pct: float | None = None
    _blackholes: dict[int, list[str]] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"tcb{self.run_id}"

    def ns(self, i: int) -> str:
        return f"tc-{self.run_id}-{i}"

    def veth(self, i: int) -> str:
        return f"tcv{self.run_id}{i}"

    def host(self, i: int) -> str:
        return f"10.77.{self.subnet}.{i + 1}"

    @property
    def hosts(self) -> list[str]:
        return [self.host(i) for i in range(self.count)]

    def wrap(self, i: int) -> list[str]:
        """The command prefix that runs a program in namespace ``i`` (``ip netns exec``
        execs it: the pid stays the program's own)."""
        return ["ip", "netns", "exec", self.ns(i)]

    def setup(self) -> None:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"10.77.{self.subnet}.254/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(self.count):
                ns, peer = self.ns(i), f"tcp{self.run_id}{i}"
                _ip("netns", "add", ns)
                _ip("link", "add", self.veth(i), "type", "veth", "peer", "name", peer)
                _ip("link", "set", peer, "netns", ns)
                _ip("link", "set", self.veth(i), "master", self.bridge, "up")
                _ip("-n", ns, "link", "set", peer, "name", "eth0")
                _ip("-n", ns, "addr", "add", f"{self.host(i)}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                if self.netem is not None and self.netem_error is None:
                    try:
                        self.set_netem(i, self.netem)
                    except RuntimeError as exc:
                        # A kernel without sch_netem (some VMs): namespaces still work.
                        if "unknown" not in str(exc):
                            raise
                        self.netem_error = f"this kernel has no netem qdisc ({exc})"
            if self.netem is not None and self.netem_error is not None and self.netem.loss_pct:
                self._loss_by_nftables(self.netem.loss_pct)
        except RuntimeError as exc:
            self.teardown()
            raise NetnsUnavailable(str(exc)) from exc

    def _loss_by_nftables(self, pct: float) -> None:
        """Without netem (no delay or jitter possible), drop ``pct`` % of what each validator
        sends at random with nftables (``numgen random``), if ``nft`` is installed."""
        if shutil.which("nft") is None:
            return
        per_10k = round(pct * 100)
        for i in range(self.count):
            for cmd in (
                ["add", "table", "ip", "tcloss"],
                ["add", "chain", "ip", "tcloss", "out",
                 "{ type filter hook output priority 0 ; }"],
                ["add", "rule", "ip", "tcloss", "out", "oifname", "eth0",
                 "numgen", "random", "mod", "10000", "lt", str(per_10k), "drop"],
            ):  # fmt: skip
                r = subprocess.run(
                    ["ip", "netns", "exec", self.ns(i), "nft", *cmd],
                    capture_output=True,
                    text=True,
                )
                if r.returncode != 0:
                    log.warning("nftables loss on %s: %s", self.ns(i), r.stderr.strip())
                    return
        self.nft_loss_pct = pct

    def set_netem(self, i: int, netem: Netem) -> None:
        r = subprocess.run(
            ["tc", "-n", self.ns(i), "qdisc", "replace", "dev", "eth0", "root", "netem",
             *netem.args()],
            capture_output=True, text=True,
        )  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(f"tc netem on {self.ns(i)}: {r.stderr.strip()}")

    def link(self, i: int, up: bool) -> None:
        _ip("link", "set", self.veth(i), "up" if up else "down")

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Cut every validator off from those in the other groups (both directions)."""
        side = {i: g for g, members in enumerate(groups) for i in members}
        for i in range(self.count):
            for j in range(self.count):
                if i != j and side.get(i) != side.get(j):
                    _ip("-n", self.ns(i), "route", "add", "blackhole", f"{self.host(j)}/32")
                    self._blackholes.setdefault(i, []).append(self.host(j))

    def heal(self) -> None:
        for i, dests in self._blackholes.items():
            for d in dests:
                _ip("-n", self.ns(i), "route", "del", "blackhole", f"{d}/32", check=False)
        self._blackholes.clear()

    def teardown(self) -> None:
        """Remove what this run made; missing pieces are fine (idempotent)."""
        teardown(self.run_id, self.count)


def teardown(run_id: str, count: int = 8) -> None:
    for i in range(count):
        _ip("netns", "del", f"tc-{run_id}-{i}", check=False)  # its veth pair goes with it
        _ip("link", "del", f"tcv{run_id}{i}", check=False)
    _ip("link", "del", f"tcb{run_id}", check=False)


def leftover_runs() -> set[str]:
    """Run ids with a namespace or bridge still present (for the stale-run sweep)."""
    ids = set()
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        m = re.match(r"tc-([0-9a-f]{6})-\d+", line)
        if m:
            ids.add(m.group(1))
    for m in re.finditer(r"\d+: tcb([0-9a-f]{6})[:@]", _ip("-o", "link", check=False).stdout):
        ids.add(m.group(1))
    return ids
