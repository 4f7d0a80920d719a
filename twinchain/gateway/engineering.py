"""Engineering values from field sources (historian files, Modbus registers) to the chain's
fixed point, the limits a value must lie in, and what each such source reports.

Conversion is exact decimal arithmetic, bit-identical between runs and machines: a text cell
is taken as the decimal it spells, a binary float as its shortest decimal form (``repr``:
what was written before it was stored as a float), an integer as itself; the value is then
scaled by the metric's decimal scale and rounded half to even (``21.0005`` at scale 3 is
``21000``, ``21.0015`` is ``21002``). A value that is not a finite number is ``malformed``;
one outside its limits, or whose fixed point does not fit an i64, is ``out_of_range``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, DecimalException
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinchain.gateway.payloads import I64_MAX, I64_MIN, Rejected

if TYPE_CHECKING:
    from twinchain.gateway.core import Gateway

# Wide enough for any i64 at any sane scale; a longer number is out of range, not rounded
# silently. Exponents are bounded so that a hostile "1e999999999" fails fast.
_CTX = Context(prec=60, rounding=ROUND_HALF_EVEN, Emax=10_000, Emin=-10_000)
_ONE = Decimal(1)


def to_decimal(value: Any) -> Decimal:
    """A cell or register value as an exact decimal (``malformed`` if it is not a finite
    number: text that does not spell one, NaN, infinities, booleans, anything else)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int):
            d = Decimal(value)
        elif isinstance(value, float):
            d = _CTX.create_decimal(repr(value))
        elif isinstance(value, str):
            d = _CTX.create_decimal(value.strip())
        elif isinstance(value, Decimal):
            d = value
        else:
            raise TypeError
    except (DecimalException, TypeError, ValueError):
        raise Rejected("malformed", f"{_show(value)} is not a number") from None
    if not d.is_finite():
        raise Rejected("malformed", f"{_show(value)} is not a finite number")
    return d


def to_fixed(value: Decimal, scale: int) -> int:
    """``value`` in the metric's fixed point (``scale`` decimals), rounded half to even."""
    try:
        q = value.scaleb(scale, _CTX).quantize(_ONE, ROUND_HALF_EVEN, _CTX)
    except DecimalException:
        raise Rejected("out_of_range", f"{_show(value)} does not fit the chain") from None
    n = int(q)
    if not I64_MIN <= n <= I64_MAX:
        raise Rejected("out_of_range", f"{_show(value)} does not fit an i64 at scale {scale}")
    return n


def scaled(value: Decimal, factor: Decimal, offset: Decimal) -> Decimal:
    """``value * factor + offset``, exactly (within 60 digits)."""
    try:
        return _CTX.add(_CTX.multiply(value, factor), offset)
    except DecimalException:
        raise Rejected("out_of_range", f"{_show(value)} scaled is out of range") from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Limits:
    """The range a metric's values must lie in, in engineering units (either end open)."""

    lo: Decimal | None = None
    hi: Decimal | None = None

    @classmethod
    def of(cls, lo: Any, hi: Any) -> Limits:
        return cls(
            None if lo is None else to_decimal(lo),
            None if hi is None else to_decimal(hi),
        )

    def check(self, value: Decimal) -> None:
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise Rejected("out_of_range", f"{value} outside [{_end(self.lo)}, {_end(self.hi)}]")


def _end(d: Decimal | None) -> str:
    return "-" if d is None else str(d)


NO_LIMITS = Limits()


@dataclass(frozen=True)
class Channel:
    """Where a source's values go: a chain metric (id, decimal scale) and its limits."""

    name: str
    metric: int
    scale: int
    limits: Limits = NO_LIMITS

    def reading_value(self, value: Any) -> int:
        """A value in the metric's unit, checked against the limits, in fixed point."""
        d = to_decimal(value)
        self.limits.check(d)
        return to_fixed(d, self.scale)


def class_ref(value: Any, base: Path) -> str:
    """A ``class`` key: a class file (relative to the config's folder) or a built-in name."""
    if not isinstance(value, str) or not value:
        raise ValueError("class must be a class file or a built-in class name")
    if value.endswith(".toml") or "/" in value:
        return str((base / value).resolve())
    return value


def class_limits(ref: str) -> dict[str, Limits]:
    """Metric name -> its envelope (``min``/``max``) in the class file or built-in class
    ``ref`` (metrics without an envelope are unbounded)."""
    from twinchain.protocol.classdef import load_class

    cls = load_class(ref)
    return {m.name: Limits.of(m.min, m.max) for m in cls.metrics}


async def chain_known(gw: Gateway) -> None:
    """Wait until the gateway knows its chain's metric registry (from its spool, or from the
    node on the first connection): a class's own metrics are not in the built-in set."""
    while gw.state.chain.genesis is None:
        await asyncio.sleep(0.1)


@dataclass
class SourceReport:
    """What one source reports in the gateway's status (``sources``): plain JSON data,
    refusals counted by reason."""

    name: str
    kind: str
    info: dict[str, Any] = field(default_factory=dict)

    def attach(self, gw: Gateway) -> SourceReport:
        self.info.setdefault("type", self.kind)
        self.info.setdefault("refused", {})
        self.info.setdefault("error", "")
        gw.state.sources[self.name] = self.info
        return self

    @property
    def refused(self) -> dict[str, int]:
        return self.info["refused"]  # type: ignore[no-any-return]

    def refuse(self, gw: Gateway, exc: Rejected, context: str = "") -> None:
        """Count a refusal here and in the gateway's ``rejected`` (logged, rate-limited)."""
        self.refused[exc.reason] = self.refused.get(exc.reason, 0) + 1
        gw.intake.reject(self.kind, exc, context)


__all__ = [
    "NO_LIMITS",
    "Channel",
    "Limits",
    "SourceReport",
    "chain_known",
    "class_limits",
    "class_ref",
    "scaled",
    "to_decimal",
    "to_fixed",
]
