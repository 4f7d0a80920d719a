"""Clean shutdown: cancelling the nursery that runs the network leaves no task behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from p2p_helpers import make_handlers, start_service, wait_until


def _all_tasks() -> set[trio.lowlevel.Task]:
    out: set[trio.lowlevel.Task] = set()
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task is None:
            continue
        out.add(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return out


async def test_cancelling_the_network_leaves_no_task_running(tmp_path: Path) -> None:
    before = _all_tasks()
    with make_handlers(2) as (ha, hb):
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, ha, tmp_path, "a")
            b = await start_service(nursery, hb, tmp_path, "b", bootnodes=(a.listen_addrs[0],))
            await wait_until(lambda: a.mesh_size() == 1 and b.mesh_size() == 1)
            (block,) = ha.author()
            a.publish_block(block.encode())
            b.publish_transaction(b"tx")
            await wait_until(lambda: hb.chain.best.hash == block.hash)
            assert len(_all_tasks()) > len(before) + 20
            nursery.cancel_scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        left = {t.name for t in _all_tasks() - before}
        assert not left, f"tasks still running after shutdown: {sorted(left)}"
        assert a.host is None and b.host is None


async def test_port_is_released_on_shutdown_and_never_shared(tmp_path: Path) -> None:
    with make_handlers(2) as (ha, hb):
        async with trio.open_nursery() as nursery:
            a = await start_service(nursery, ha, tmp_path, "a")
            port = int(a.listen_addrs[0].split("/tcp/")[1].split("/")[0])
            # py-libp2p would happily share the port (SO_REUSEPORT); the service refuses.
            with pytest.raises(OSError, match="not available"):
                await start_service(nursery, hb, tmp_path, "b", port=port)
            nursery.cancel_scope.cancel()
        async with trio.open_nursery() as nursery:
            again = await start_service(nursery, ha, tmp_path, "a", port=port)
            assert again.listen_addrs == a.listen_addrs
            nursery.cancel_scope.cancel()
