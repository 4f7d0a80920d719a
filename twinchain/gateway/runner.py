"""Run a gateway process: uvloop, signals, sources, status file, live table, Prometheus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from rich.console import Console
from rich.live import Live

from twinchain.gateway import sources as src
from twinchain.gateway.config import GatewayConfig
from twinchain.gateway.core import Gateway
from twinchain.gateway.status import serve_prometheus, table, write_status
from twinchain.primitives.process import tune_gc

log = logging.getLogger("twinchain.gateway")


async def _status_loop(gw: Gateway, live: Live | None) -> None:
    while True:
        s = gw.status()
        if gw.cfg.status_file is not None:
            try:
                write_status(gw.cfg.status_file, s)
            except OSError as exc:
                log.warning("cannot write %s: %s", gw.cfg.status_file, exc)
        if live is not None:
            live.update(table(s))
        await asyncio.sleep(1.0)


async def main_async(cfg: GatewayConfig, *, live: bool) -> None:
    # asyncua narrates every OPC-UA request at info level.
    logging.getLogger("asyncua").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    gw = Gateway(cfg)
    await gw.open()
    tune_gc()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, gw.stop)
    if cfg.prometheus_port:
        serve_prometheus(gw, cfg.prometheus_host, cfg.prometheus_port)
        log.info(
            "Prometheus metrics on http://%s:%d/metrics", cfg.prometheus_host, cfg.prometheus_port
        )
    sources = [src.build(i, s) for i, s in enumerate(cfg.sources)]
    console = Console(stderr=True)
    ctx: Any = Live(console=console, refresh_per_second=2) if live else contextlib.nullcontext()
    with ctx as lv:
        status = asyncio.create_task(_status_loop(gw, lv))
        try:
            await gw.run(sources)
        finally:
            status.cancel()
            with contextlib.suppress(BaseException):
                await status
    if cfg.status_file is not None:
        s = gw.status()
        s["connected"] = False
        s["stopped"] = True
        with contextlib.suppress(OSError):
            write_status(cfg.status_file, s)


def run(cfg: GatewayConfig, *, live: bool = False) -> None:
    try:
        import uvloop

        uvloop.run(main_async(cfg, live=live))
    except ImportError:  # uvloop is a dependency; plain asyncio still works without it
        asyncio.run(main_async(cfg, live=live))
