"""The gateway reaches its node over TLS: a node process serving https/wss with a certificate
from a test CA (trustme), a gateway process given that CA (``ca_file``): its commitments
reach finalized blocks and its readings the facility archive. A gateway without the CA
connects to nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme
from realnet import free_port, wait_for

from twinchain.gateway.provision import with_gateway, write_gateway
from twinchain.machines.simulator import MachineConfig
from twinchain.node.chain_spec import dev_spec

MACHINES = [MachineConfig("pump-1", "pump")]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.mark.slow
def test_gateway_over_tls_finalizes_and_archives(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, chain_file, key_file = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    for i, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(chain_file), append=i > 0)
    cert.private_key_pem.write_to_path(str(key_file))
    port = free_port()
    gw = write_gateway(
        tmp_path / "gw",
        node=f"https://127.0.0.1:{port}",
        machines=MACHINES,
        first_twin=0,
        tick_ms=250,
        batching={"max_delay_ms": 300},
    )
    config = gw.config.read_text()
    gw.config.write_text(config.replace("[gateway]\n", f'[gateway]\nca_file = "{ca_file}"\n', 1))
    (tmp_path / "spec.json").write_text(
        json.dumps(with_gateway(dev_spec().to_json(), gw, MACHINES, window_ms=10_000))
    )
    node = subprocess.Popen(
        [sys.executable, "-m", "twinchain", "--log", "warning", "node",
         "--chain", str(tmp_path / "spec.json"), "--validator", "--key", "//Alice",
         "--base-path", str(tmp_path / "chain"), "--rpc-port", str(port), "--no-p2p",
         "--no-prometheus", "--archive-facility", "0",
         "--rpc-tls-cert", str(chain_file), "--rpc-tls-key", str(key_file)],
        stdout=(tmp_path / "node.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    gateway = subprocess.Popen(
        [sys.executable, "-m", "twinchain", "gateway", "--config", str(gw.config)],
        stdout=(tmp_path / "gateway.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    status_file = gw.folder / "status.json"

    def status() -> dict[str, Any]:
        return json.loads(status_file.read_text())  # type: ignore[no-any-return]

    try:
        wait_for(
            lambda: status()["readings_final"] > 0 and status()["readings_archived"] > 0,
            60,
            "readings finalized and archived through https/wss",
        )
        assert status()["connected"] and not status()["archive_error"]
    finally:
        _stop(gateway)
    # The same gateway without the CA: the node's certificate is not trusted.
    gw.config.write_text(config)
    gateway = subprocess.Popen(
        [sys.executable, "-m", "twinchain", "gateway", "--config", str(gw.config)],
        stdout=(tmp_path / "gateway2.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        refused = "CERTIFICATE_VERIFY_FAILED"  # the system's CAs do not know the test CA
        wait_for(lambda: refused in status()["node_error"], 30, "a refused certificate")
        assert not status()["connected"]
    finally:
        _stop(gateway)
        _stop(node)
