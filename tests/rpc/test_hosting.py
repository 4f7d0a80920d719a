"""RPC and metrics hosted in a real node through ``NodeConfig.services``, and the flags of
``twinchain node`` that ask for them."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio

from twinchain.cli import build_parser
from twinchain.node.chain_spec import dev_spec
from twinchain.node.service import Node, NodeConfig
from twinchain.rpc.hosting import MetricsService, RpcService


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
