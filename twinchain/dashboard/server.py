"""Runs the dashboard app under hypercorn on asyncio (the client's event loop)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from twinchain.dashboard.app import Dashboard
from twinchain.dashboard.chain import ChainView
from twinchain.primitives.keys import Keypair

log = logging.getLogger("twinchain.dashboard")


def config(host: str, port: int) -> Config:
    c = Config()
    c.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    c.accesslog = None  # no request log: URLs may carry one-time sign-in tokens
    c.errorlog = logging.getLogger("twinchain.dashboard.http")
    c.include_server_header = False
    c.graceful_timeout = 1.0
    return c


def build(
    rpc: str,
    origin: str,
    *,
    facility: int | None = None,
    archive_rpc: str | None = None,
    archive_dir: Path | None = None,
    api_keys: Path | None = None,
    reader_key: Keypair | None = None,
    reader_api_key: str | None = None,
) -> Dashboard:
    view = ChainView(
        rpc,
        facility=facility,
        archive_rpc=archive_rpc,
        archive_dir=archive_dir,
        reader_key=reader_key,
        reader_api_key=reader_api_key,
    )
    return Dashboard(view, origin=origin, api_keys=api_keys, facility=facility)


async def serve(
    rpc: str,
    host: str,
    port: int,
    *,
    public_url: str | None = None,
    **kwargs: Any,
) -> None:
    """Serve until SIGINT/SIGTERM."""
    origin = (public_url or f"http://{host}:{port}").rstrip("/")
    app = build(rpc, origin, **kwargs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("dashboard on %s (node %s)", origin, rpc)
    await hypercorn_serve(app, config(host, port), shutdown_trigger=stop.wait)  # type: ignore[arg-type]


__all__ = ["build", "config", "serve"]
