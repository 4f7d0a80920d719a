"""RPC and metrics hosted in a real node through ``NodeConfig.services``, and the flags of
``twinchain node`` that ask for them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx
import pytest
import trio
import trustme

from twinchain.archive.hosting import ArchiveOptions
from twinchain.cli import build_parser
from twinchain.client import RpcClient
from twinchain.node import cli as node_cli
from twinchain.node.chain_spec import dev_spec
from twinchain.node.service import Node, NodeConfig
from twinchain.primitives.errors import CliError
from twinchain.rpc.auth import API_KEYS_FILE
from twinchain.rpc.hosting import MetricsService, NodeHostingOptions, RpcService


async def test_node_hosts_rpc_and_metrics(tmp_path: Path) -> None:
    node = Node(
        NodeConfig(
            spec=dev_spec(),
            base_path=tmp_path,
            name="hosted",
            port=None,
            services=[RpcService(port=0), MetricsService(port=0)],
        )
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        assert set(node.service_ports) == {"rpc", "prometheus"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "system_name", "params": []}
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"http://127.0.0.1:{node.service_ports['rpc']}/",
                content=json.dumps(body),
                headers={"content-type": "application/json"},
            )
            assert r.json()["result"] == "hosted"
            m = await http.get(f"http://127.0.0.1:{node.service_ports['prometheus']}/metrics")
            assert "substrate_block_height" in m.text
        nursery.cancel_scope.cancel()


def test_node_without_services_serves_nothing(tmp_path: Path) -> None:
    node = Node(NodeConfig(spec=dev_spec(), base_path=tmp_path, port=None))
    try:
        assert node.config.services == [] and node.service_ports == {}
    finally:
        node.close()


def _services(*argv: str) -> list[object]:
    args = build_parser().parse_args(["node", "--dev", *argv])
    return [s for options in args.service_options for s in options.services(args)]


def test_node_flags_ask_for_the_same_services_as_before() -> None:
    assert _services() == [RpcService(port=9944), MetricsService(port=9615)]
    assert _services("--no-rpc", "--no-prometheus") == []
    assert _services(
        "--rpc-port",
        "1234",
        "--rpc-external",
        "--rpc-methods",
        "unsafe",
        "--rpc-cors",
        "http://a,http://b",
        "--prometheus-port",
        "5678",
        "--prometheus-external",
    ) == [
        RpcService(host="0.0.0.0", port=1234, unsafe=True, cors=["http://a", "http://b"]),
        MetricsService(host="0.0.0.0", port=5678),
    ]
    assert _services("--no-rpc") == [MetricsService(port=9615)]


def test_node_help_lists_the_rpc_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["node", "--help"])
    out = capsys.readouterr().out
    for flag in ("--rpc-port", "--no-rpc", "--rpc-methods", "--rpc-cors", "--prometheus-port"):
        assert flag in out


def test_node_flags_for_tls_api_keys_and_the_archive(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("x")
    key.write_text("x")
    [rpc] = _services("--no-prometheus", "--rpc-tls-cert", str(cert), "--rpc-tls-key", str(key))
    assert isinstance(rpc, RpcService)
    assert (rpc.tls_cert, rpc.tls_key, rpc.archive, rpc.api_keys) == (cert, key, None, None)
    with pytest.raises(CliError, match="go together"):
        _services("--rpc-tls-cert", str(cert))
    with pytest.raises(CliError, match="no such file"):
        _services("--rpc-tls-cert", str(cert), "--rpc-tls-key", str(tmp_path / "none"))
    # With --base-path: API keys from there; with --archive-facility: the archive's one store
    # (options of their own: the CLI's are one per process and keep the store they open).
    archive_options = ArchiveOptions()
    parser = argparse.ArgumentParser()
    node_cli.add_parser(
        parser.add_subparsers(dest="cmd"),
        services=(archive_options, NodeHostingOptions(archive=archive_options.store_for)),
    )
    args = parser.parse_args(
        ["node", "--dev", "--base-path", str(tmp_path), "--archive-facility", "3"]
    )
    found = [s for options in args.service_options for s in options.services(args)]
    [archive] = [s for s in found if s.name == "archive"]
    [rpc] = [s for s in found if isinstance(s, RpcService)]
    try:
        assert rpc.archive is archive.store  # type: ignore[attr-defined]
        assert rpc.api_keys == tmp_path / API_KEYS_FILE
    finally:
        archive.store.close()  # type: ignore[attr-defined]


async def test_node_serves_rpc_over_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, chain_file, key_file = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    for i, pem in enumerate(cert.cert_chain_pems):
        pem.write_to_path(str(chain_file), append=i > 0)
    cert.private_key_pem.write_to_path(str(key_file))
    rpc = RpcService(port=0, tls_cert=chain_file, tls_key=key_file)
    node = Node(
        NodeConfig(spec=dev_spec(), base_path=tmp_path, name="tls", port=None, services=[rpc])
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        url = f"https://127.0.0.1:{node.service_ports['rpc']}"

        def call() -> object:
            with RpcClient(url, ca_file=ca_file) as c:
                return c.call("system_name")

        assert await trio.to_thread.run_sync(call) == "tls"
        nursery.cancel_scope.cancel()
