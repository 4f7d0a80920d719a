"""The canonical msgpack profile for everything that is hashed or signed.

Rules (a value has exactly one encoding, so its hash is well defined):

* bytes are msgpack ``bin``, text is ``str`` (valid UTF-8), integers use the shortest form;
* no floats, no maps and no ext types: structures are arrays in a fixed field order;
* a decoded buffer holds exactly one value (no trailing bytes) and is re-encoded and compared,
  so any non-minimal or otherwise non-canonical form is rejected;
* sizes are bounded (whole buffer, strings, bins, arrays, nesting depth).

Decoding untrusted bytes raises :class:`CodecError` and nothing else.

On top of the raw profile sits a small type system (``U32``, ``Bytes(64)``, ``Vec(T)``,
``Struct``...) that checks values, converts them to and from the wire form, and describes
itself for the runtime metadata, so that clients decode everything generically.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import msgpack

MAX_MESSAGE = 16 * 1024 * 1024
MAX_DEPTH = 32


class CodecError(ValueError):
    """Raised for any value or buffer outside the canonical profile."""


def _check_plain(obj: Any, depth: int = 0) -> Any:
    """Validate that ``obj`` only uses types allowed by the profile; tuples become lists."""
    if depth > MAX_DEPTH:
        raise CodecError("value nested too deeply")
    t = type(obj)
    if obj is None or t is bool or t is bytes or t is str:
        return obj
    if t is int:
        if not -(1 << 63) <= obj < (1 << 64):
            raise CodecError(f"integer out of 64-bit range: {obj}")
        return obj
    if t is list or t is tuple:
        return [_check_plain(x, depth + 1) for x in obj]
    if t is bytearray or t is memoryview:
        return bytes(obj)
    raise CodecError(f"type not allowed in canonical encoding: {t.__name__}")


def to_plain(obj: Any) -> Any:
    """``obj`` as plain data (tuples become lists); CodecError if it holds anything else."""
    return _check_plain(obj)


def encode(obj: Any) -> bytes:
    """Encode a plain value (None, bool, int, bytes, str, list/tuple) canonically."""
    try:
        return msgpack.packb(_check_plain(obj), use_bin_type=True, strict_types=True)
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises several types; callers see one
        raise CodecError(f"cannot encode: {exc}") from exc


def _reject_ext(code: int, data: bytes) -> Any:
    raise CodecError(f"ext type {code} not allowed")


def _nesting_ok(items: list[Any], depth: int) -> bool:
    """No list in ``items`` is nested deeper than MAX_DEPTH (only lists are visited)."""
    if depth > MAX_DEPTH:
        return False
    return all(_nesting_ok(x, depth + 1) for x in items if type(x) is list)


def _reject_map(obj: Any) -> Any:
    raise CodecError("maps are not allowed")


def decode(data: bytes, max_size: int = MAX_MESSAGE) -> Any:
    """Decode one canonical value from ``data``; raise CodecError on anything else."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError("expected bytes")
    data = bytes(data)
    if len(data) > max_size:
        raise CodecError(f"message too large: {len(data)} > {max_size}")
    if not data:
        raise CodecError("empty input")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_map_len=0,
            max_ext_len=0,
            ext_hook=_reject_ext,
            object_hook=_reject_map,
        )
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"malformed msgpack: {type(exc).__name__}: {exc}") from exc
    if type(obj) is list and not _nesting_ok(obj, 1):
        raise CodecError("non-canonical value: value nested too deeply")
    # Canonical iff re-encoding gives the same bytes. The unpacker yields only None, bool,
    # in-range ints, str, bytes, lists and floats, so the one thing left to refuse is a
    # float: packed once with doubles and once with singles, a value holding one cannot
    # match the input both times (two C-speed packs instead of a Python walk of the value).
    try:
        again = msgpack.packb(obj, use_bin_type=True, strict_types=True)
        if again == data:
            again = msgpack.packb(obj, use_bin_type=True, strict_types=True, use_single_float=True)
    except Exception as exc:
        raise CodecError(f"non-canonical value: {exc}") from exc
    if again != data:
        raise CodecError("non-canonical encoding (or a float)")
    return obj


# --------------------------------------------------------------------------- type system


class Type:
    """A wire type: validates a Python value and maps it to and from its plain form."""

    name: str = "?"

    def to_wire(self, value: Any) -> Any:
        raise NotImplementedError

    def from_wire(self, wire: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> Any:
        """JSON-able description used in runtime metadata."""
        return self.name

    def encode(self, value: Any) -> bytes:
        # Every to_wire validates its value and returns plain data (ints in range, exact
        # bytes/str/bool/None, lists), so the generic _check_plain walk is skipped: msgpack's
        # strict mode still refuses anything else, and the bytes are the same.
        try:
            return msgpack.packb(self.to_wire(value), use_bin_type=True, strict_types=True)
        except CodecError:
            raise
        except Exception as exc:  # msgpack raises several types; callers see one
            raise CodecError(f"cannot encode: {exc}") from exc

    def decode(self, data: bytes, max_size: int = MAX_MESSAGE) -> Any:
        return self.from_wire(decode(data, max_size))

    def decode_stored(self, data: bytes) -> Any:
        """Decode bytes this node wrote itself with :meth:`encode` (runtime state): the
        types are still checked, the canonical-encoding check that guards untrusted input
        (re-encoding and comparing) is skipped."""
        try:
            wire = msgpack.unpackb(
                data, raw=False, max_map_len=0, max_ext_len=0, object_hook=_reject_map
            )
        except Exception as exc:
            raise CodecError(f"malformed msgpack: {type(exc).__name__}: {exc}") from exc
        return self.from_wire(wire)

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


class _UInt(Type):
    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.max = (1 << bits) - 1
        self.name = f"u{bits}"

    def to_wire(self, value: Any) -> Any:
        if type(value) is not int or not 0 <= value <= self.max:
            raise CodecError(f"{self.name} expected, got {value!r}")
        if self.bits > 64:
            return value.to_bytes(self.bits // 8, "big")
        return value

    def from_wire(self, wire: Any) -> Any:
        if self.bits > 64:
            if type(wire) is not bytes or len(wire) != self.bits // 8:
                raise CodecError(f"{self.name}: expected {self.bits // 8}-byte bin")
            return int.from_bytes(wire, "big")
        if type(wire) is not int or not 0 <= wire <= self.max:
            raise CodecError(f"{self.name} expected, got {wire!r}")
        return wire


class _Int(Type):
    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.lo, self.hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        self.name = f"i{bits}"

    def to_wire(self, value: Any) -> Any:
        if type(value) is not int or not self.lo <= value <= self.hi:
            raise CodecError(f"{self.name} expected, got {value!r}")
        return value

    from_wire = to_wire


U8, U16, U32, U64, U128 = (_UInt(b) for b in (8, 16, 32, 64, 128))
I32, I64 = _Int(32), _Int(64)


class _Bool(Type):
    name = "bool"

    def to_wire(self, value: Any) -> Any:
        if type(value) is not bool:
            raise CodecError(f"bool expected, got {value!r}")
        return value

    from_wire = to_wire


Bool = _Bool()


class Bytes(Type):
    """Variable-length bytes up to ``max_len``."""

    def __init__(self, max_len: int = 1 << 20) -> None:
        self.max_len = max_len
        self.name = f"bytes<{max_len}>"

    def to_wire(self, value: Any) -> Any:
        if type(value) is not bytes or len(value) > self.max_len:
            raise CodecError(f"{self.name} expected, got {type(value).__name__}")
        return value

    from_wire = to_wire


class Fixed(Type):
    """Exactly ``n`` bytes (hashes, account ids, signatures)."""

    def __init__(self, n: int, name: str | None = None) -> None:
        self.n = n
        self.name = name or f"[u8;{n}]"

    def to_wire(self, value: Any) -> Any:
        if type(value) is not bytes or len(value) != self.n:
            raise CodecError(f"{self.name}: expected {self.n} bytes")
        return value

    from_wire = to_wire


H256 = Fixed(32, "H256")
AccountId = Fixed(32, "AccountId")
Signature = Fixed(64, "Signature")


class Str(Type):
    def __init__(self, max_len: int = 256) -> None:
        self.max_len = max_len
        self.name = f"str<{max_len}>"

    def to_wire(self, value: Any) -> Any:
        if type(value) is not str:
            raise CodecError(f"{self.name} expected, got {value!r:.40}")
        try:
            size = len(value.encode())
        except UnicodeEncodeError:
            raise CodecError(f"{self.name}: not valid Unicode text") from None
        if size > self.max_len:
            raise CodecError(f"{self.name}: longer than {self.max_len} bytes")
        return value

    from_wire = to_wire


class Vec(Type):
    def __init__(self, inner: Type, max_len: int = 1 << 16) -> None:
        self.inner = inner
        self.max_len = max_len
        self.name = f"Vec<{inner.name}>"

    def to_wire(self, value: Any) -> Any:
        if not isinstance(value, list | tuple) or len(value) > self.max_len:
            raise CodecError(f"{self.name}: expected a list of at most {self.max_len}")
        return [self.inner.to_wire(v) for v in value]

    def from_wire(self, wire: Any) -> Any:
        if type(wire) is not list or len(wire) > self.max_len:
            raise CodecError(f"{self.name}: expected a list of at most {self.max_len}")
        return [self.inner.from_wire(v) for v in wire]

    def describe(self) -> Any:
        return {"vec": self.inner.describe(), "max": self.max_len}


class Option(Type):
    def __init__(self, inner: Type) -> None:
        if isinstance(inner, Option):
            raise TypeError("Option<Option<T>> is ambiguous on the wire")
        self.inner = inner
        self.name = f"Option<{inner.name}>"

    def to_wire(self, value: Any) -> Any:
        return None if value is None else self.inner.to_wire(value)

    def from_wire(self, wire: Any) -> Any:
        return None if wire is None else self.inner.from_wire(wire)

    def describe(self) -> Any:
        return {"option": self.inner.describe()}


class Tuple(Type):
    def __init__(self, *items: Type) -> None:
        self.items = items
        self.name = "(" + ", ".join(t.name for t in items) + ")"

    def to_wire(self, value: Any) -> Any:
        if not isinstance(value, list | tuple) or len(value) != len(self.items):
            raise CodecError(f"{self.name}: expected {len(self.items)} items")
        return [t.to_wire(v) for t, v in zip(self.items, value, strict=True)]

    def from_wire(self, wire: Any) -> Any:
        if type(wire) is not list or len(wire) != len(self.items):
            raise CodecError(f"{self.name}: expected {len(self.items)} items")
        return tuple(t.from_wire(v) for t, v in zip(self.items, wire, strict=True))

    def describe(self) -> Any:
        return {"tuple": [t.describe() for t in self.items]}


class Enum(Type):
    """A closed set of string variants, encoded by index (a C-like enum)."""

    def __init__(self, name: str, variants: Sequence[str]) -> None:
        self.name = name
        self.variants = list(variants)
        self._index = {v: i for i, v in enumerate(self.variants)}

    def to_wire(self, value: Any) -> Any:
        try:
            return self._index[value]
        except (KeyError, TypeError):
            raise CodecError(f"{self.name}: unknown variant {value!r}") from None

    def from_wire(self, wire: Any) -> Any:
        if type(wire) is not int or not 0 <= wire < len(self.variants):
            raise CodecError(f"{self.name}: bad variant index {wire!r}")
        return self.variants[wire]

    def describe(self) -> Any:
        return {"enum": self.name, "variants": self.variants}


class Struct(Type):
    """A dataclass encoded as an array of its fields in declaration order.

    Usually built by :meth:`Record.wire_type`.
    """

    def __init__(self, cls: type, fields: Sequence[tuple[str, Type]]) -> None:
        self.cls = cls
        self.fields = list(fields)
        self.name = cls.__name__

    def to_wire(self, value: Any) -> Any:
        if not isinstance(value, self.cls):
            raise CodecError(f"{self.name} expected, got {type(value).__name__}")
        return [t.to_wire(getattr(value, f)) for f, t in self.fields]

    def from_wire(self, wire: Any) -> Any:
        if type(wire) is not list or len(wire) != len(self.fields):
            raise CodecError(f"{self.name}: expected {len(self.fields)} fields")
        return self.cls(*(t.from_wire(w) for (_, t), w in zip(self.fields, wire, strict=True)))

    def describe(self) -> Any:
        return {"struct": self.name, "fields": [[f, t.describe()] for f, t in self.fields]}


class Record:
    """Base for dataclass records with a wire type built from class-level ``FIELDS``.

    Subclasses are dataclasses and declare ``FIELDS: ClassVar = {"name": Type, ...}`` in the
    same order as the dataclass fields; ``Cls.wire_type()`` is then the :class:`Struct`.
    """

    FIELDS: ClassVar[dict[str, Type]] = {}

    @classmethod
    def wire_type(cls) -> Struct:
        t = cls.__dict__.get("_wire_type")
        if t is None:
            names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
            if names != list(cls.FIELDS):
                raise TypeError(f"{cls.__name__}: FIELDS must match dataclass fields {names}")
            t = Struct(cls, list(cls.FIELDS.items()))
            cls._wire_type = t  # type: ignore[attr-defined]
        return t

    def to_bytes(self) -> bytes:
        return self.wire_type().encode(self)

    @classmethod
    def from_bytes(cls, data: bytes, max_size: int = MAX_MESSAGE) -> Any:
        return cls.wire_type().decode(data, max_size)


class Lazy(Type):
    """A type resolved on first use (for recursive or late-bound types such as RuntimeCall)."""

    def __init__(self, name: str, resolve: Callable[[], Type]) -> None:
        self.name = name
        self._resolve = resolve
        self._t: Type | None = None

    @property
    def target(self) -> Type:
        if self._t is None:
            self._t = self._resolve()
        return self._t

    def to_wire(self, value: Any) -> Any:
        return self.target.to_wire(value)

    def from_wire(self, wire: Any) -> Any:
        return self.target.from_wire(wire)

    def describe(self) -> Any:
        return self.name
