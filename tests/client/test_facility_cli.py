"""``twinchain facility peer-id``: a peer id (or a multiaddr ending in one) as the 0x hex a
council motion takes; anything else is a usage error, not a traceback."""

from __future__ import annotations

import pytest

from twinchain.cli import main

PEER = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"


def test_peer_id_as_hex(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["facility", "peer-id", f"/ip4/10.0.0.1/tcp/30333/p2p/{PEER}"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("0x002408011220") and len(out) == 2 + 2 * 38


def test_not_a_peer_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["facility", "peer-id", "12D3nope"]) == 1
    assert "not a peer id" in capsys.readouterr().err
