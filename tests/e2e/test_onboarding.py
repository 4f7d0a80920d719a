"""Onboarding on a live, chain-permissioned devnet (issue 20): four facility validators whose
genesis lists their nodes' peer ids; a fifth facility goes through the whole flow with the
``twinchain facility`` and ``twinchain consortium`` commands (the council grants its
operator the role, it registers, an auditor verifies it, it proposes its validator and node,
the council approves) and after the session boundary it authors blocks and its finality
votes count. Its node is refused until the approval is final, and syncs after; a node with
an unknown peer id stays at genesis. A second test suspends the facility: at the next
boundary it leaves the set and the network.

All nodes run in one devnet for the module (real processes on loopback, 0.5 s slots,
sessions of SESSION blocks); the join runs once, in a fixture, so the removal test can
run alone."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from realnet import free_port, heights, peers, rpc, table, wait_for

from twinchain.cli import main as twinchain_main
from twinchain.client.sync import Client
from twinchain.consensus.proofs import GrandpaJustification
from twinchain.devnet import manager
from twinchain.devnet.manager import SPEC_ID, NodeInfo
from twinchain.p2p.host import load_or_create_identity, peer_id_of
from twinchain.primitives.keys import Keypair
from twinchain.primitives.keystore import Keystore
from twinchain.protocol.jsonrpc import from_hex

pytestmark = pytest.mark.slow

SLOT_MS = 500  # half-second slots: sessions and finality in half the time
SESSION = 10  # blocks
FIFTH = 4  # the fifth facility's id
OPERATOR = "//Ferdie"  # funded on the devnet, no role: the council grants FacilityOperator


@dataclass
class Net:
    base: Path
    validators: list[NodeInfo]
    fifth: NodeInfo
    fifth_key: Keypair
    observer: NodeInfo
    operators: list[str]  # key files of the founding facilities' operators
    auditor: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.validators[0].rpc_url

    def start(self, node: NodeInfo, boot: list[NodeInfo], validator: bool = True) -> None:
        proc = manager.start_node(
            self.base, node, [m.multiaddr for m in boot if m is not node], validator=validator
        )
        self.procs[node.slug] = proc
        node.pid = proc.pid

    def log(self, node: NodeInfo) -> str:
        return (Path(node.base_path) / "node.log").read_text(errors="replace")


def peer_of(node: NodeInfo) -> str:
    return node.multiaddr.rsplit("/p2p/", 1)[1]


def extra_node(base: Path, name: str, key: Keypair | None) -> NodeInfo:
    """A node outside the plan: its own folder, ports and libp2p key (so its peer id is
    known before it starts), and ``key`` as its Aura key."""
    slug = name.lower()
    folder = base / slug
    chain_dir = folder / "chains" / SPEC_ID
    if key is not None:
        Keystore(chain_dir / "keystore").insert("aura", key)
    net_key = load_or_create_identity(chain_dir / "network" / "secret_ed25519")
    p2p = free_port()
    addr = f"/ip4/127.0.0.1/tcp/{p2p}/p2p/{peer_id_of(net_key)}"
    public = key.public.hex() if key else ""
    return NodeInfo(name, slug, str(folder), p2p, free_port(), public, 0, 0, addr)


def cli(*argv: str) -> str:
    """Run a ``twinchain`` command in this process (as a user would, without the start-up
    cost of a new interpreter each time); its output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = twinchain_main(list(argv))
    assert rc == 0, f"twinchain {' '.join(argv)} failed:\n{out.getvalue()}"
    return out.getvalue()


def motion(net: Net, call: str, *values: str, ayes: int) -> None:
    """A council motion carrying ``call``: the first founder proposes it, ``ayes - 1`` more
    founders vote aye, anyone closes it; it must dispatch without error."""
    url = ["--rpc", net.url]
    out = cli("consortium", "propose", *url, "--key", net.operators[0], call, *values)
    index = re.search(r"Council\.Proposed\(.*?motion=(\d+)", out)
    assert index, out
    for key in net.operators[1:ayes]:
        cli("consortium", "vote", *url, "--key", key, index[1], "--aye")
    out = cli("consortium", "close", *url, "--key", net.operators[0], index[1])
    assert "ok=ok" in out, out


def authorities(net: Net) -> list[bytes]:
    """The authority set at the finalized block (a verified read)."""
    with Client(net.url, timeout=10) as c:
        return list(c.read_storage("Authority", "Authorities"))


def finalized_authors(node: NodeInfo, after: int, auths: list[bytes]) -> list[int]:
    """Index in ``auths`` of the author of each finalized block after ``after``."""
    with rpc(node) as r:
        fin = int(r.call("chain_getHeader", r.call("chain_getFinalizedHead"))["number"], 16)
        out = []
        for n in range(after + 1, fin + 1):
            slot = int(r.call("chain_getHeader", r.call("chain_getBlockHash", n))["slot"], 16)
            out.append(slot % len(auths))
    return out


def justification_voters(node: NodeInfo, after: int) -> tuple[int, set[bytes]]:
    """(set id, precommit voters) of the newest justification of a finalized block above
    ``after``; (-1, empty) if there is none yet."""
    with rpc(node) as r:
        fin = int(r.call("chain_getHeader", r.call("chain_getFinalizedHead"))["number"], 16)
        for n in range(fin, after, -1):
            got = r.call("chain_getBlock", r.call("chain_getBlockHash", n))["justifications"]
            if got:
                j = GrandpaJustification.decode(from_hex(got[0][1], "justification"))
                return j.set_id, {m.voter for m in j.precommits}
    return -1, set()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    base = tmp_path_factory.mktemp("onboarding") / "devnet"
    _, validators, _ = manager.plan_all(
        base, 4, SLOT_MS, session_length=SESSION, nodes_on_chain=True, machines=3, faults=False
    )
    accounts = json.loads((base / "domain.json").read_text())
    key_file = "{}/keys/acct-{}".format
    fifth_key = Keypair.generate()
    n = Net(
        base,
        validators,
        extra_node(base, "Fifth", fifth_key),
        fifth_key,
        extra_node(base, "Stranger", None),
        [key_file(base, accounts[v.slug]["operator"].removeprefix("0x")) for v in validators],
        key_file(base, accounts["auditor"].removeprefix("0x")),
    )
    try:
        for v in validators:  # a full mesh started together, as `devnet up` does
            n.start(v, validators)
        for v in validators:
            manager.wait_rpc(v, n.procs[v.slug])
        # The fifth facility's node and a stranger dial the validators from the start.
        n.start(n.fifth, validators)
        n.start(n.observer, validators, validator=False)
        manager.wait_rpc(n.fifth, n.procs["fifth"])
        manager.wait_rpc(n.observer, n.procs["stranger"])
        yield n
    finally:
        for proc in n.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def joined(net: Net) -> Net:
    """The fifth facility's whole way in, each step a command; returns once its key is in
    the finalized authority set."""
    url = ["--rpc", net.url]
    wait_for(lambda: heights(net.validators[0])[1] >= 3, 60, lambda: table(net.validators))
    ferdie = Keypair.from_dev_name("Ferdie").public.hex()
    # The council (4 founders: two thirds is 3) makes Ferdie a facility operator.
    motion(net, "Roles.force_grant", f"who=0x{ferdie}", "role=FacilityOperator", ayes=3)
    out = cli(
        "facility", "register", *url, "--key", OPERATOR, "--name", "Fifth Plant",
        "--location", "Gdansk", "--capability", "welding",
        "--validator", "0x" + net.fifth_key.public.hex(),
    )  # fmt: skip
    assert f"facility={FIFTH}" in out, out
    evidence = net.base / "audit-report.pdf"
    evidence.write_bytes(b"site audit of the fifth plant")
    cli("facility", "audit", *url, "--key", net.auditor, str(FIFTH), "--evidence", str(evidence))
    cli(
        "facility", "propose-validator", *url, "--key", OPERATOR, str(FIFTH),
        "--node", peer_of(net.fifth),
    )  # fmt: skip
    # Proposed but not approved: the validators still refuse its node, which has no block.
    assert heights(net.fifth)[0] == 0 and peers(net.fifth) == 0
    assert f"refused {peer_of(net.fifth)}" in net.log(net.validators[0])
    listed = cli("facility", "nodes", *url)
    assert peer_of(net.fifth) not in listed and "4 authorized nodes" in listed, listed

    # The council (now 5 members with Ferdie) approves: 4 ayes cover either threshold.
    motion(net, "Facility.approve_validator", f"facility={FIFTH}", ayes=4)
    assert peer_of(net.fifth) in cli("facility", "nodes", *url)
    # Admitted once the approval is final: the fifth node connects and syncs.
    target = heights(net.validators[0])[1]
    wait_for(
        lambda: heights(net.fifth)[0] >= target,
        60,
        lambda: f"the fifth node to sync past #{target}: {table([*net.validators, net.fifth])}",
    )
    # Its key joins at the next session boundary.
    wait_for(
        lambda: net.fifth_key.public in authorities(net),
        4 * SESSION,
        "the fifth validator in the finalized authority set",
    )
    shown = cli("facility", "show", *url, str(FIFTH))
    assert "[verified]" in shown and "validator active" in shown, shown
    return net


def test_unknown_peer_gets_no_gossip_and_no_sync(net: Net) -> None:
    stranger = peer_of(net.observer)
    best = heights(net.validators[0])[0]
    wait_for(lambda: heights(net.validators[0])[0] >= best + 5, 30, lambda: table(net.validators))
    assert heights(net.observer) == (0, 0), "a node the chain never authorized synced"
    assert peers(net.observer) == 0
    refused = [v.name for v in net.validators if f"refused {stranger}" in net.log(v)]
    assert refused, "no validator logged refusing the stranger"


def test_fifth_facility_joins_authors_and_votes(joined: Net) -> None:
    net = joined
    auths = authorities(net)
    assert len(auths) == 5
    me = auths.index(net.fifth_key.public)
    start = heights(net.validators[0])[1]
    # It authors: a finalized block of one of its slots, after the boundary.
    wait_for(
        lambda: me in finalized_authors(net.validators[0], start, auths),
        6 * len(auths),
        lambda: f"a finalized block by the fifth validator: {table(net.validators)}",
    )
    # Its finality votes count: with one founder paused, 4 of 5 voters are needed, so no
    # block is finalized without the fifth's precommit, and the justifications show it.
    paused = net.validators[3]
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        ref = heights(net.validators[0])[1]
        wait_for(
            lambda: all(heights(n)[1] >= ref + 3 for n in (*net.validators[:3], net.fifth)),
            40,
            lambda: f"finality past #{ref + 2} with 4 of 5: {table([*net.validators, net.fifth])}",
        )
        set_id, voters = justification_voters(net.validators[0], ref)
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    with Client(net.url, timeout=10) as c:
        assert set_id == c.read_storage("Authority", "SetId"), "a justification of the new set"
    assert net.fifth_key.public in voters and len(voters) >= 4, voters


def test_suspended_fifth_facility_leaves_the_set_and_the_network(joined: Net) -> None:
    net = joined
    url = ["--rpc", net.url]
    # Suspension changes the council (two thirds of 5: 4 ayes).
    motion(net, "Facility.suspend", f"facility={FIFTH}", "reason=0x" + "11" * 32, ayes=4)
    wait_for(
        lambda: net.fifth_key.public not in authorities(net),
        4 * SESSION,
        "the fifth validator out of the finalized authority set",
    )
    assert len(authorities(net)) == 4
    assert peer_of(net.fifth) not in cli("facility", "nodes", *url)
    # Its node is dropped and stops following; finality goes on with the four founders.
    wait_for(lambda: peers(net.fifth) == 0, 15, "the validators to drop the fifth node")
    stuck = heights(net.fifth)[0]
    ref = heights(net.validators[0])[1]
    wait_for(
        lambda: all(heights(v)[1] >= ref + 3 for v in net.validators),
        40,
        lambda: f"finality with the four founders: {table(net.validators)}",
    )
    assert heights(net.fifth)[0] <= stuck + 1, "the suspended facility's node kept syncing"
