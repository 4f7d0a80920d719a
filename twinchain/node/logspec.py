"""``-l/--log`` as Substrate spells it: ``LEVEL``, ``target=LEVEL`` or both, comma-separated.

``-l debug`` sets the default level; ``-l grandpa=debug,sync=debug`` sets levels per target and
leaves the default at info; ``-l info,grandpa=debug`` mixes them. The option may be repeated;
later items win. Short targets name our loggers (:data:`TARGETS`); any other name is taken as a
logger name, under ``twinchain.`` unless it already is or belongs to a library we log through.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from twinchain.primitives.log import TRACE

LEVELS: dict[str, int] = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "off": logging.CRITICAL + 10,
}

#: Substrate-style short targets -> the logger names this code base logs under.
TARGETS: dict[str, str] = {
    "grandpa": "twinchain.grandpa",
    "finality": "twinchain.grandpa",
    "sync": "twinchain.p2p.sync",
    "gossip": "twinchain.p2p.gossip",
    "p2p": "twinchain.p2p",
    "peerset": "twinchain.p2p.scoring",
    "host": "twinchain.p2p.host",
    "rpc": "twinchain.rpc",
    "metrics": "twinchain.rpc.metrics",
    "prometheus": "twinchain.rpc.metrics",
    "txpool": "twinchain.node.txpool",
    "chain": "twinchain.chain",
    "node": "twinchain.node",
    "service": "twinchain.node",
    "native": "twinchain.native",
    "gateway": "twinchain.gateway",
    "offchain": "twinchain.offchain",
    "pdm": "twinchain.offchain.pdm",
    "explorer": "twinchain.explorer",
}

#: Libraries whose own logger names are taken as they are (not put under ``twinchain.``).
FOREIGN_ROOTS = frozenset({"libp2p", "hypercorn", "httpx", "httpcore", "trio_websocket", "asyncua"})

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")


class LogSpecError(ValueError):
    """A malformed ``-l`` value; the message is fit for the command line."""


@dataclass
class LogSpec:
    default: int = logging.INFO
    #: Logger name -> level, in the order given.
    targets: dict[str, int] = field(default_factory=dict)


def _level(text: str, item: str) -> int:
    level = LEVELS.get(text.strip().lower())
    if level is None:
        raise LogSpecError(
            f"unknown log level {text.strip()!r} in {item!r} (one of {', '.join(LEVELS)})"
        )
    return level


def logger_name(target: str) -> str:
    """The logger a ``-l`` target names."""
    if target in TARGETS:
        return TARGETS[target]
    if not _NAME.fullmatch(target):
        raise LogSpecError(f"bad log target {target!r}: a logger name such as p2p.sync")
    root = target.split(".", 1)[0]
    if root == "twinchain" or root in FOREIGN_ROOTS:
        return target
    return f"twinchain.{target}"


def parse(values: str | list[str] | None) -> LogSpec:
    """Parse one ``-l`` value or several (repeated options); raises LogSpecError."""
    if values is None:
        values = []
    elif isinstance(values, str):
        values = [values]
    spec = LogSpec()
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            if "=" not in item:
                spec.default = _level(item, item)
                continue
            target, _, level = item.partition("=")
            name = logger_name(target.strip())
            spec.targets.pop(name, None)  # re-insert: a later item wins and comes later
            spec.targets[name] = _level(level, item)
    return spec


def check(value: str) -> str:
    """argparse ``type=``: validate now (a clear usage error), keep the text to pass on."""
    import argparse

    try:
        parse(value)
    except LogSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def short_target(name: str) -> str:
    """The shortest ``-l`` target for a logger name (for log lines below info)."""
    best = name.removeprefix("twinchain.")
    for short, full in TARGETS.items():
        if full == name and len(short) < len(best):
            best = short
    return best


class TargetFormatter(logging.Formatter):
    """Prefix records below INFO with their target, as Substrate does, so that a debug line
    says where it came from; info and above keep the plain message."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno < logging.INFO:
            return f"{short_target(record.name)}: {text}"
        return text


def apply(spec: LogSpec, root: logging.Logger | None = None) -> None:
    """Set the root (default) level and each target's level."""
    root = root or logging.getLogger()
    root.setLevel(spec.default)
    for name, level in spec.targets.items():
        logging.getLogger(name).setLevel(level)


__all__ = [
    "LEVELS",
    "TARGETS",
    "LogSpec",
    "LogSpecError",
    "TargetFormatter",
    "apply",
    "check",
    "logger_name",
    "parse",
    "short_target",
]
