"""The operations story (every pallet, from registration to settled work orders) produces
the same blocks, with the same state commitments, as when it was recorded.

``data/replay/operations-roots.json`` holds, for each block the story builds, its state
commitment and its hash. A refactor that changes what the runtime writes (a storage key, an
event, a weight and so a fee) changes them. Regenerate it only for a deliberate runtime
change, with ``TWINCHAIN_RECORD_GOLDEN=1``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from twinchain.primitives import keys

HERE = Path(__file__).resolve().parent
GOLDEN = HERE.parent / "data" / "replay" / "operations-roots.json"


def story() -> Callable[[Any], None]:
    spec = importlib.util.spec_from_file_location("_ops_story", HERE / "test_operations_flow.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.test_operations_story_end_to_end  # type: ignore[no-any-return]


class CountingUrandom:
    """Deterministic stand-in for ``os.urandom`` in the key module: BIP-340's auxiliary
    randomness (and fresh seeds) become a counter, so signatures, and through them block hashes
    and every state that records one, repeat from run to run."""

    def __init__(self) -> None:
        self.n = 0

    def urandom(self, size: int) -> bytes:
        self.n += 1
        return self.n.to_bytes(size, "big")


def test_operations_story_replays_to_the_recorded_roots(
    make_chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "os", CountingUrandom())
    chains: list[Any] = []

    def recording(**kw: Any) -> Any:
        chains.append(make_chain(**kw))
        return chains[-1]

    story()(recording)
    got = [[b.header.state_root.hex(), b.hash.hex()] for chain in chains for b in chain.blocks]
    assert len(got) > 20
    if os.environ.get("TWINCHAIN_RECORD_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=0) + "\n")
    assert got == json.loads(GOLDEN.read_text())
