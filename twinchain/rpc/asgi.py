"""What the JSON-RPC and the metrics servers share to run an ASGI app under hypercorn on trio.

The ASGI message types, the lifespan handshake, a hypercorn configuration with the node's
defaults, and :func:`serve_asgi`, which reports the bound port and turns a port that cannot be
bound into one plain ``OSError`` (trio would wrap it in nested exception groups).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def bind_address(host: str, port: int) -> str:
    """``host:port`` as hypercorn binds it and as logs show it (``[::1]:9944`` for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bound_port(binds: list[str]) -> int:
    """The port hypercorn reports it listens on ("http://127.0.0.1:40123", "http://[::1]:...")."""
    return int(binds[0].rsplit(":", 1)[1])


def first_leaf(group: BaseExceptionGroup[OSError]) -> OSError:
    """The first exception in a (nested) group."""
    first = group.exceptions[0]
    return first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer ASGI's lifespan messages: nothing to set up or tear down."""
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def hypercorn_config(host: str, port: int, *, errorlog: str, read_timeout: int) -> Config:
    """Hypercorn bound to ``host:port``: no access log, its errors to the logger ``errorlog``,
    no Server header, a peer silent for ``read_timeout`` seconds dropped, 1 s to stop."""
    config = Config()
    config.bind = [bind_address(host, port)]
    config.accesslog = None
    config.errorlog = logging.getLogger(errorlog)
    config.read_timeout = read_timeout
    config.graceful_timeout = 1.0
    config.include_server_header = False
    return config


async def serve_asgi(
    app: Callable[[Scope, Receive, Send], Awaitable[None]],
    config: Config,
    *,
    what: str,
    on_listening: Callable[[int], None] | None = None,
    beside: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``config.bind[0]`` until cancelled; ``beside`` (if any) runs alongside
    and stops with it. Once listening: ``on_listening(port)``, then ``task_status.started(port)``.

    A bind that fails raises ``OSError("<what> cannot listen on <bind>: <reason>")``.
    """
    listening = False
    try:
        async with trio.open_nursery() as nursery:
            if beside is not None:
                nursery.start_soon(beside)

            async def http_server(task_status: trio.TaskStatus[list[str]]) -> None:
                # Our apps speak plain ASGI dicts, not hypercorn's TypedDicts.
                asgi = cast("ASGIFramework", app)
                await serve(asgi, config, mode="asgi", task_status=task_status)
                nursery.cancel_scope.cancel()  # hypercorn stopped: so does what runs beside

            binds: list[str] = await nursery.start(http_server)
            listening = True
            port = bound_port(binds)
            if on_listening is not None:
                on_listening(port)
            task_status.started(port)
    except BaseExceptionGroup as group:
        # A port in use arrives wrapped in nested nursery groups: give the caller the OSError.
        bind_errors, rest = group.split(OSError)
        if listening or bind_errors is None or rest is not None:
            raise
        exc = first_leaf(bind_errors)
        raise OSError(
            exc.errno, f"{what} cannot listen on {config.bind[0]}: {exc.strerror}"
        ) from None
