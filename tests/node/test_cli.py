"""The CLI, run as a real process the way an operator runs it."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from twinchain.cli import build_parser
from twinchain.node import logspec
from twinchain.node.blockchain import Blockchain
from twinchain.node.chain_spec import dev_spec
from twinchain.node.cli import log_values
from twinchain.primitives.keys import Keypair, decode_address
from twinchain.primitives.keystore import Keystore
from twinchain.primitives.log import TRACE
from twinchain.primitives.types import Extrinsic
from twinchain.runtime.runtime import SPEC_VERSION


def twinchain(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twinchain", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_key_generate_and_inspect() -> None:
    info = json.loads(twinchain("key", "generate", "--output-type", "json").stdout)
    seed = info["secretSeed"]
    assert decode_address(info["address"]).hex() == info["publicKey"][2:]
    again = json.loads(twinchain("key", "inspect", seed, "--output-type", "json").stdout)
    assert again["publicKey"] == info["publicKey"]
    by_addr = json.loads(
        twinchain("key", "inspect", info["address"], "--output-type", "json").stdout
    )
    assert by_addr["publicKey"] == info["publicKey"] and "secretSeed" not in by_addr
    alice = json.loads(twinchain("key", "inspect", "//Alice", "--output-type", "json").stdout)
    assert alice["publicKey"] == "0x" + Keypair.from_dev_name("Alice").public.hex()


def test_key_inspect_rejects_bad_address() -> None:
    kp = Keypair.from_dev_name("Bob")
    addr = kp.address
    broken = addr[:-1] + ("2" if addr[-1] != "2" else "3")
    r = twinchain("key", "inspect", broken, check=False)
    assert r.returncode == 1 and "cannot inspect" in r.stderr


def test_key_insert_writes_0600_file(tmp_path: Path) -> None:
    r = twinchain(
        "key",
        "insert",
        "--dev",
        "--base-path",
        str(tmp_path),
        "--key-type",
        "aura",
        "--suri",
        "//Charlie",
        "--output-type",
        "json",
    )
    info = json.loads(r.stdout)
    f = Path(info["file"])
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.parent.stat().st_mode) == 0o700
    ks = Keystore(f.parent)
    assert [k.public for k in ks.keys("aura")] == [Keypair.from_dev_name("Charlie").public]
    bad = twinchain(
        "key", "insert", "--dev", "--base-path", str(tmp_path), "--key-type", "nope", check=False
    )
    assert bad.returncode == 1 and "key-type" in bad.stderr


def test_build_spec_round_trip(tmp_path: Path) -> None:
    raw = json.loads(twinchain("build-spec", "--chain", "local", "--raw").stdout)
    assert raw["id"] == "local_testnet" and raw["genesisHash"].startswith("0x")
    plain = json.loads(twinchain("build-spec", "--chain", "local").stdout)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(plain))
    again = json.loads(twinchain("build-spec", "--chain", str(spec_file), "--raw").stdout)
    assert again["genesisHash"] == raw["genesisHash"]
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    r = twinchain("build-spec", "--chain", str(broken), check=False)
    assert r.returncode == 1 and "chain spec" in r.stderr


def _make_chain(base: Path, blocks: int) -> Blockchain:
    chain = Blockchain(dev_spec(), base)
    alice, bob = Keypair.from_dev_name("Alice"), Keypair.from_dev_name("Bob")
    call = chain.runtime.call_by_name("Balances", "transfer", bob.public, 10**12)
    nonce = 0
    for i in range(blocks):
        xts = []
        for _ in range(5):
            xts.append(
                (b"", Extrinsic.sign(call, alice, nonce, chain.genesis_hash, SPEC_VERSION).encode())
            )
            nonce += 1
        _, res = chain.propose(alice, 100 + i, (100 + i) * 1000, xts)
        chain.self_finalize(alice, res.hash)
    return chain


def test_export_import_reexecutes_to_same_state(tmp_path: Path) -> None:
    src = tmp_path / "src"
    chain = _make_chain(src, 6)
    best = chain.best
    chain.close()
    out_file = tmp_path / "blocks.bin"
    twinchain("export-blocks", "--dev", "--base-path", str(src), str(out_file))
    dst = tmp_path / "dst"
    r = twinchain("import-blocks", "--dev", "--base-path", str(dst), str(out_file))
    assert "imported 6 blocks" in r.stderr
    again = Blockchain(dev_spec(), dst)
    try:
        assert again.best.hash == best.hash
        assert again.best.state_root == best.state_root
        assert again.finalized.number == 6
    finally:
        again.close()
    # A corrupted block is rejected, and the chain stays where it was.
    data = bytearray(out_file.read_bytes())
    data[-10] ^= 0xFF
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    r = twinchain(
        "import-blocks", "--dev", "--base-path", str(tmp_path / "dst2"), str(bad), check=False
    )
    assert r.returncode == 1 and ("rejected" in r.stderr or "bad block" in r.stderr)


def test_purge_chain(tmp_path: Path) -> None:
    _make_chain(tmp_path, 1).close()
    db = tmp_path / "chains" / "dev" / "db"
    assert db.exists()
    twinchain("purge-chain", "--dev", "--base-path", str(tmp_path), "-y")
    assert not db.exists()


# ---------------------------------------------------------------------------- -l/--log


def test_log_spec_default_targets_and_mixes() -> None:
    assert logspec.parse("debug") == logspec.LogSpec(logging.DEBUG, {})
    # Targets alone keep the default at info; short targets are our loggers' names.
    assert logspec.parse("grandpa=debug,sync=debug") == logspec.LogSpec(
        logging.INFO, {"twinchain.grandpa": logging.DEBUG, "twinchain.p2p.sync": logging.DEBUG}
    )
    spec = logspec.parse(["info,gossip=trace", "WARN,p2p.host=error,libp2p.pubsub=debug"])
    assert spec.default == logging.WARNING
    assert spec.targets == {
        "twinchain.p2p.gossip": TRACE,
        "twinchain.p2p.host": logging.ERROR,  # any other name goes under twinchain.
        "libp2p.pubsub": logging.DEBUG,  # a library's own logger stays as it is
    }
    # A later item for the same target wins.
    assert logspec.parse("rpc=debug,rpc=off").targets == {"twinchain.rpc": logging.CRITICAL + 10}
    assert logspec.logger_name("twinchain.chain") == "twinchain.chain"
    assert logspec.logger_name("txpool") == "twinchain.node.txpool"
    for bad, why in (
        ("sync=verbose", "unknown log level 'verbose'"),
        ("a b=debug", "bad log target"),
    ):
        with pytest.raises(logspec.LogSpecError, match=why):
            logspec.parse(bad)


def test_log_spec_applies_levels_per_target() -> None:
    root = logging.getLogger("logspec-test-root")
    sync = logging.getLogger("twinchain.p2p.sync")
    gossip = logging.getLogger("twinchain.p2p.gossip")
    saved = sync.level, gossip.level
    try:
        logspec.apply(logspec.parse("warn,sync=debug"), root)
        assert root.level == logging.WARNING
        assert sync.isEnabledFor(logging.DEBUG)
        assert gossip.getEffectiveLevel() == logging.getLogger("twinchain.p2p").getEffectiveLevel()
    finally:
        sync.setLevel(saved[0])
        gossip.setLevel(saved[1])


def test_log_option_errors_and_old_spelling() -> None:
    r = twinchain("-l", "sync=verbose", "key", "generate", check=False)
    assert r.returncode == 2
    assert "argument -l/--log: unknown log level 'verbose' in 'sync=verbose'" in r.stderr
    r = twinchain("node", "--dev", "-l", "sync=loud", check=False)
    assert r.returncode == 2 and "unknown log level 'loud'" in r.stderr
    # The old global spelling still works, in either case.
    assert twinchain("--log", "DEBUG", "key", "generate").returncode == 0
    assert twinchain("--log", "warning", "-l", "grandpa=debug", "key", "generate").returncode == 0


def test_log_option_parsed_before_and_after_the_subcommand() -> None:
    args = build_parser().parse_args(["-l", "info", "node", "--dev", "-l", "sync=debug"])
    assert log_values(args) == ["info", "sync=debug"]
    args = build_parser().parse_args(["devnet", "up", "-l", "grandpa=debug,sync=debug"])
    assert log_values(args) == ["grandpa=debug,sync=debug"]
