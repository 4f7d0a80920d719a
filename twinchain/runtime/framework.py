"""The FRAME-like runtime framework: storage items, origins, calls, events, errors, pallets.

A pallet is one class in one module, read top to bottom like a FRAME pallet::

    class Balances(Pallet):
        name = "Balances"

        Account = StorageMap(AccountId, AccountData.wire_type())      # storage

        class Event(PalletEvents):                                           # events
            Transfer = (("from", AccountId), ("to", AccountId), ("amount", U128))

        class Error(PalletErrors):                                           # errors
            InsufficientBalance = "balance too low to send value"

        @call(0, weight=150_000, origin=SIGNED, args=(("dest", AccountId), ("value", U128)))
        def transfer(self, origin: Origin, dest: bytes, value: int) -> None:
            who = ensure_signed(origin)       # first line checks the origin
            ...                               # validate, then mutate, then deposit an event
            self.deposit(self.Event.Transfer(who, dest, value))

Storage keys are ``blake3(pallet)[:16] ++ blake3(item)[:16]`` and, for maps,
``++ blake3(enc(key))[:16] ++ enc(key)`` per key: spread evenly over the trie, and the key is
readable back out of the storage key for iteration (msgpack is self-delimiting, so the key set
stays prefix-free as the state trie requires).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import msgpack

from twinchain.primitives.codec import CodecError, Type, to_plain
from twinchain.primitives.hashing import Domain, hash_for

if TYPE_CHECKING:
    from twinchain.runtime.overlay import Overlay
    from twinchain.runtime.runtime import Runtime

# --------------------------------------------------------------------------- origins

ROOT = "root"
SIGNED = "signed"
NONE = "none"
# Declared by calls that accept more than one kind (e.g. root, or a governance account's
# signed origin); such a call checks its origin itself on its first line.
ROOT_OR_SIGNED = "root|signed"


@dataclass(frozen=True)
class Origin:
    """Who is dispatching a call: root, a signed account, or none (inherents)."""

    kind: str
    who: bytes | None = None

    @classmethod
    def root(cls) -> Origin:
        return cls(ROOT)

    @classmethod
    def signed(cls, who: bytes) -> Origin:
        return cls(SIGNED, who)

    @classmethod
    def none(cls) -> Origin:
        return cls(NONE)


class DispatchError(Exception):
    """A call failed: its writes are reverted; the fee is still paid and the nonce bumped.

    ``module``/``error`` name the pallet's error variant (``BadOrigin`` and the other
    framework errors use module "System").
    """

    def __init__(self, module: str, error: str, doc: str = "") -> None:
        super().__init__(f"{module}.{error}: {doc}" if doc else f"{module}.{error}")
        self.module = module
        self.error = error
        self.doc = doc


def bad_origin(expected: str) -> DispatchError:
    return DispatchError("System", "BadOrigin", f"this call needs a {expected} origin")


def ensure_signed(origin: Origin) -> bytes:
    if origin.kind != SIGNED or origin.who is None:
        raise bad_origin(SIGNED)
    return origin.who


def ensure_root(origin: Origin) -> None:
    if origin.kind != ROOT:
        raise bad_origin(ROOT)


def ensure_none(origin: Origin) -> None:
    if origin.kind != NONE:
        raise bad_origin(NONE)


# What a call may raise that fails the call, never the node: a DispatchError, or a pallet bug
# or an argument the pallet did not anticipate (reported as ``System.Other``). Every node
# runs the same code, so this stays deterministic.
CALL_FAILURES: tuple[type[Exception], ...] = (
    DispatchError,
    CodecError,
    ArithmeticError,
    ValueError,
    KeyError,
    TypeError,
)


def transactional(state: Overlay, fn: Callable[[], object]) -> DispatchError | None:
    """Run ``fn`` in its own transactional layer of ``state``: the one layering of every
    call and hook (the executive's extrinsics, nested calls, hooks' ``in_layer``).

    ``fn`` returns: its layer is committed, and None returned. It raises one of
    ``CALL_FAILURES``: its writes and events are rolled back, with any layer it left open,
    and the failure is returned as a DispatchError. Anything else is rolled back likewise
    and raised.
    """
    depth = state.depth
    state.start_transaction()
    try:
        fn()
    except CALL_FAILURES as exc:
        error = (
            exc
            if isinstance(exc, DispatchError)
            else DispatchError("System", "Other", f"{type(exc).__name__}: {exc}")
        )
    except BaseException:
        while state.depth > depth:
            state.rollback_transaction()
        raise
    else:
        state.commit_transaction()
        return None
    while state.depth > depth:  # also closes layers a buggy pallet left open
        state.rollback_transaction()
    return error


# --------------------------------------------------------------------------- errors & events


class ErrorVariant:
    """One error of a pallet; calling it makes the DispatchError to raise."""

    def __init__(self, module: str, name: str, index: int, doc: str) -> None:
        self.module, self.name, self.index, self.doc = module, name, index, doc

    def __call__(self, detail: str = "") -> DispatchError:
        return DispatchError(self.module, self.name, f"{self.doc}{': ' + detail if detail else ''}")


class PalletErrors:
    """Base for a pallet's ``Error`` class: each attribute ``Name = "doc"`` becomes a variant."""

    variants: ClassVar[list[ErrorVariant]] = []

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        module = cls.__qualname__.split(".")[0]
        cls.variants = []
        for name, doc in list(vars(cls).items()):
            if name.startswith("_") or not isinstance(doc, str):
                continue
            v = ErrorVariant(module, name, len(cls.variants), doc)
            cls.variants.append(v)
            setattr(cls, name, v)


@dataclass(frozen=True)
class EventRecord:
    """An event as deposited: pallet and variant names, and the arguments in wire form."""

    module: str
    name: str
    args: tuple[Any, ...]


class EventVariant:
    def __init__(self, module: str, name: str, index: int, fields: Sequence[tuple[str, Type]]):
        self.module, self.name, self.index, self.fields = module, name, index, list(fields)

    def __call__(self, *args: Any) -> EventRecord:
        if len(args) != len(self.fields):
            raise TypeError(f"{self.module}.{self.name} takes {len(self.fields)} arguments")
        wire = tuple(t.to_wire(a) for (_, t), a in zip(self.fields, args, strict=True))
        return EventRecord(self.module, self.name, wire)

    def decode_args(self, wire: Sequence[Any]) -> dict[str, Any]:
        return {f: t.from_wire(w) for (f, t), w in zip(self.fields, wire, strict=True)}


class PalletEvents:
    """Base for a pallet's ``Event`` class: ``Name = (("field", Type), ...)`` per variant."""

    variants: ClassVar[list[EventVariant]] = []

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        module = cls.__qualname__.split(".")[0]
        cls.variants = []
        for name, fields in list(vars(cls).items()):
            if name.startswith("_") or not isinstance(fields, tuple):
                continue
            v = EventVariant(module, name, len(cls.variants), fields)
            cls.variants.append(v)
            setattr(cls, name, v)


# --------------------------------------------------------------------------- calls


Weight = int | Callable[..., int]


@dataclass
class CallDef:
    """A dispatchable: index within its pallet, weight, required origin, typed arguments."""

    index: int
    name: str
    fn: Callable[..., Any]
    weight: Weight
    origin: str
    args: list[tuple[str, Type]]
    doc: str = ""
    inherent: bool = False
    # The spec version that introduced the call: a chain at an older version does not have
    # it (it does not decode there, as on a node of the release before it).
    since: int = 0

    def weigh(self, rt: Runtime, args: Sequence[Any]) -> int:
        """Declared weight; a callable weight is called as ``weight(runtime, *args)``."""
        return self.weight(rt, *args) if callable(self.weight) else self.weight

    def decode_args(self, wire: Sequence[Any]) -> list[Any]:
        if len(wire) != len(self.args):
            raise CodecError(f"{self.name} takes {len(self.args)} arguments, got {len(wire)}")
        return [t.from_wire(w) for (_, t), w in zip(self.args, wire, strict=True)]


def call(
    index: int,
    *,
    weight: Weight,
    origin: str,
    args: Sequence[tuple[str, Type]] = (),
    inherent: bool = False,
    since: int = 0,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a dispatchable call of a pallet (see the module docstring); ``since``: the
    spec version that introduced it."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = (fn.__doc__ or "").strip()
        fn.__call_def__ = CallDef(  # type: ignore[attr-defined]
            index, fn.__name__, fn, weight, origin, list(args), doc, inherent, since
        )
        return fn

    return deco


class _RuntimeCallType(Type):
    """A call nested in another call's arguments (sudo, multisig), kept in wire form and
    decoded when it is dispatched: ``[pallet index, call index, [args]]``."""

    name = "RuntimeCall"

    def to_wire(self, value: Any) -> Any:
        if (
            type(value) is not list
            or len(value) != 3
            or type(value[0]) is not int
            or type(value[1]) is not int
            or type(value[2]) is not list
        ):
            raise CodecError("RuntimeCall must be [pallet, call, [args]]")
        # The arguments are kept in wire form: check them here, since Type.encode trusts
        # to_wire to return plain data.
        return [value[0], value[1], to_plain(value[2])]

    from_wire = to_wire


RuntimeCall = _RuntimeCallType()


def nested_call_weight(overhead: int, arg_index: int) -> Callable[..., int]:
    """Weight of a call that dispatches the call in argument ``arg_index``."""

    def weigh(rt: Runtime, *args: Any) -> int:
        return overhead + rt.weigh_wire(args[arg_index])

    return weigh


# --------------------------------------------------------------------------- storage


def prefix_hash(name: str) -> bytes:
    return hash_for(Domain.STORAGE_PREFIX, name.encode())[:16]


# Hashed keys of plain keys (account ids, integers, tuples of integers), by (type, key): a
# block touches the same few thousand keys over and over, and encoding and hashing one costs
# more than the state access itself. Cleared when full; it only ever saves work.
_KEY_CACHE: dict[tuple[Type, Any], bytes] = {}
_KEY_CACHE_MAX = 1 << 17


def hashed_key(t: Type, key: Any) -> bytes:
    tk = type(key)
    # Exact types only: True == 1 and hashes alike, but an integer type refuses True.
    cacheable = tk is bytes or tk is int or (tk is tuple and all(type(x) is int for x in key))
    if cacheable:
        hit = _KEY_CACHE.get((t, key))
        if hit is not None:
            return hit
    enc = t.encode(key)
    out = hash_for(Domain.STORAGE_KEY, enc)[:16] + enc
    if cacheable:
        if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
            _KEY_CACHE.clear()
        _KEY_CACHE[(t, key)] = out
    return out


# Decoded values by (value type, stored bytes), for ``get_shared``: equal bytes decode to
# equal values, so one decoded object can serve every read of them, in any block and state,
# as long as no caller mutates it. Cleared when full; it only ever saves work.
_SHARED: dict[tuple[Type, bytes], Any] = {}
_SHARED_MAX = 1 << 14


def _decode_shared(t: Type, raw: bytes) -> Any:
    key = (t, raw)
    v = _SHARED.get(key)
    if v is None:
        v = t.decode_stored(raw)
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        _SHARED[key] = v
    return v


def _split_key(data: bytes, t: Type) -> tuple[Any, bytes]:
    """Read one hashed key off the front of ``data``; return (key, rest)."""
    up = msgpack.Unpacker(raw=False, strict_map_key=True, max_map_len=0)
    up.feed(data[16:])
    wire = up.unpack()
    used = up.tell()
    return t.from_wire(wire), data[16 + used :]


class StorageItem:
    """Base of the storage declarations; bound to a runtime when its pallet is built."""

    doc: str = ""
    kind: str = ""

    def __init__(self) -> None:
        self.prefix = b""
        self.name = ""
        self._rt: Runtime | None = None

    def bind(self, pallet: str, name: str, rt: Runtime) -> StorageItem:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.prefix = prefix_hash(pallet) + prefix_hash(name)
        clone.name = name
        clone._rt = rt
        return clone

    @property
    def _state(self) -> Overlay:
        assert self._rt is not None, "storage item used before its pallet was bound"
        return self._rt.state

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError


class StorageValue(StorageItem):
    kind = "Value"

    def __init__(self, value: Type, default: Any = None, doc: str = "") -> None:
        super().__init__()
        self.value_type, self.default, self.doc = value, default, doc

    def get(self) -> Any:
        raw = self._state.get(self.prefix)
        return self.default if raw is None else self.value_type.decode_stored(raw)

    def exists(self) -> bool:
        return self._state.get(self.prefix) is not None

    def put(self, value: Any) -> None:
        self._state.set(self.prefix, self.value_type.encode(value))

    def kill(self) -> None:
        self._state.delete(self.prefix)

    def mutate(self, fn: Callable[[Any], Any]) -> Any:
        v = fn(self.get())
        self.put(v)
        return v

    def key(self) -> bytes:
        return self.prefix

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "value": self.value_type.describe(),
            "prefix": "0x" + self.prefix.hex(),
            "doc": self.doc,
        }


class StorageMap(StorageItem):
    kind = "Map"

    def __init__(self, key: Type, value: Type, default: Any = None, doc: str = "") -> None:
        super().__init__()
        self.key_type, self.value_type, self.default, self.doc = key, value, default, doc

    def key(self, k: Any) -> bytes:
        return self.prefix + hashed_key(self.key_type, k)

    def get(self, k: Any) -> Any:
        raw = self._state.get(self.key(k))
        return self.default if raw is None else self.value_type.decode_stored(raw)

    def get_shared(self, k: Any) -> Any:
        """``get`` for a caller that only reads the value: it may be the same object as an
        earlier read of the same bytes returned, so it must never be mutated (hot read-only
        records, such as a twin's spec during telemetry import, skip their decode)."""
        raw = self._state.get(self.key(k))
        return self.default if raw is None else _decode_shared(self.value_type, raw)

    def contains(self, k: Any) -> bool:
        return self._state.get(self.key(k)) is not None

    def insert(self, k: Any, v: Any) -> None:
        self._state.set(self.key(k), self.value_type.encode(v))

    def remove(self, k: Any) -> None:
        self._state.delete(self.key(k))

    def mutate(self, k: Any, fn: Callable[[Any], Any]) -> Any:
        v = fn(self.get(k))
        if v is None:
            self.remove(k)
        else:
            self.insert(k, v)
        return v

    def iter(self, start_after: Any = None) -> Iterator[tuple[Any, Any]]:
        """All (key, value) pairs in storage-key order (deterministic, not insertion order)."""
        after = None if start_after is None else self.key(start_after)
        for sk, raw in self._state.iter_prefix(self.prefix, after):
            k, _ = _split_key(sk[len(self.prefix) :], self.key_type)
            yield k, self.value_type.decode_stored(raw)

    def keys(self) -> Iterator[Any]:
        for k, _ in self.iter():
            yield k

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "key": self.key_type.describe(),
            "value": self.value_type.describe(),
            "hasher": "blake3_128_concat",
            "prefix": "0x" + self.prefix.hex(),
            "doc": self.doc,
        }


class StorageDoubleMap(StorageItem):
    kind = "DoubleMap"

    def __init__(self, key1: Type, key2: Type, value: Type, default: Any = None, doc: str = ""):
        super().__init__()
        self.key1_type, self.key2_type, self.value_type = key1, key2, value
        self.default, self.doc = default, doc

    def prefix1(self, k1: Any) -> bytes:
        return self.prefix + hashed_key(self.key1_type, k1)

    def key(self, k1: Any, k2: Any) -> bytes:
        return self.prefix1(k1) + hashed_key(self.key2_type, k2)

    def get(self, k1: Any, k2: Any) -> Any:
        raw = self._state.get(self.key(k1, k2))
        return self.default if raw is None else self.value_type.decode_stored(raw)

    def get_shared(self, k1: Any, k2: Any) -> Any:
        """``get`` for a caller that never mutates the value (see ``StorageMap.get_shared``)."""
        raw = self._state.get(self.key(k1, k2))
        return self.default if raw is None else _decode_shared(self.value_type, raw)

    def contains(self, k1: Any, k2: Any) -> bool:
        return self._state.get(self.key(k1, k2)) is not None

    def insert(self, k1: Any, k2: Any, v: Any) -> None:
        self._state.set(self.key(k1, k2), self.value_type.encode(v))

    def remove(self, k1: Any, k2: Any) -> None:
        self._state.delete(self.key(k1, k2))

    def mutate(self, k1: Any, k2: Any, fn: Callable[[Any], Any]) -> Any:
        v = fn(self.get(k1, k2))
        if v is None:
            self.remove(k1, k2)
        else:
            self.insert(k1, k2, v)
        return v

    def iter_prefix(self, k1: Any) -> Iterator[tuple[Any, Any]]:
        """(key2, value) pairs under ``k1``, in storage-key order."""
        p = self.prefix1(k1)
        for sk, raw in self._state.iter_prefix(p):
            k2, _ = _split_key(sk[len(p) :], self.key2_type)
            yield k2, self.value_type.decode_stored(raw)

    def iter(self) -> Iterator[tuple[Any, Any, Any]]:
        for sk, raw in self._state.iter_prefix(self.prefix):
            k1, rest = _split_key(sk[len(self.prefix) :], self.key1_type)
            k2, _ = _split_key(rest, self.key2_type)
            yield k1, k2, self.value_type.decode_stored(raw)

    def remove_prefix(self, k1: Any) -> int:
        keys = [sk for sk, _ in self._state.iter_prefix(self.prefix1(k1))]
        for sk in keys:
            self._state.delete(sk)
        return len(keys)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "key1": self.key1_type.describe(),
            "key2": self.key2_type.describe(),
            "value": self.value_type.describe(),
            "hasher": "blake3_128_concat",
            "prefix": "0x" + self.prefix.hex(),
            "doc": self.doc,
        }


# --------------------------------------------------------------------------- pallets

# A signed call as the executive holds it once decoded: (pallet, call, decoded arguments).
DecodedCall = tuple["Pallet", CallDef, list[Any]]
# A signature to verify: (public key, message, signature).
SignatureCheck = tuple[bytes, bytes, bytes]


class Pallet:
    """Base class of a pallet. Subclasses set ``name`` and declare items, calls, events, errors.

    ``genesis(config)`` writes the initial storage from the chain spec's section for this
    pallet; ``on_initialize(n)`` returns the weight it used; ``on_finalize(n)`` closes the block.
    """

    name: ClassVar[str] = ""
    Event: ClassVar[type[PalletEvents]] = PalletEvents
    Error: ClassVar[type[PalletErrors]] = PalletErrors

    # Collected by __init_subclass__.
    calls: ClassVar[dict[int, CallDef]] = {}
    calls_by_name: ClassVar[dict[str, CallDef]] = {}
    storage_items: ClassVar[dict[str, StorageItem]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.calls, cls.calls_by_name, cls.storage_items = {}, {}, {}
        for klass in reversed(cls.__mro__):
            for attr, v in vars(klass).items():
                if isinstance(v, StorageItem):
                    cls.storage_items[attr] = v
                cd = getattr(v, "__call_def__", None)
                if isinstance(cd, CallDef):
                    if cd.index in cls.calls and cls.calls[cd.index].name != cd.name:
                        raise TypeError(f"{cls.__name__}: duplicate call index {cd.index}")
                    cls.calls[cd.index] = cd
                    cls.calls_by_name[cd.name] = cd

    def __init__(self, runtime: Runtime, index: int) -> None:
        self.runtime = runtime
        self.index = index
        for attr, item in self.storage_items.items():
            setattr(self, attr, item.bind(self.name, attr, runtime))

    # -- hooks
    def genesis(self, config: dict[str, Any]) -> None:
        """Write initial storage from the chain spec (default: nothing)."""

    def post_genesis(self, config: dict[str, Any]) -> None:
        """Genesis that needs every pallet's own genesis first (run after all of them, in
        pallet order, with the same section of the chain spec; default: nothing)."""

    def on_initialize(self, number: int) -> int:
        return 0

    def on_finalize(self, number: int) -> None:
        return None

    def extra_signatures(self, calls: Sequence[DecodedCall]) -> list[SignatureCheck]:
        """Signatures other than the extrinsics' own that ``calls`` (a block's or a gossiped
        batch's decoded signed calls) carry for this pallet to verify while they run, less
        those already known good: ``(public key, message, signature)``.

        The executive verifies them together with the extrinsics' signatures in ONE
        ``native.verify_batch`` call and hands the verdicts back to :meth:`note_verified`.
        It only ever saves work: a pallet still verifies, while the call runs, whatever no
        one vouched for. Default: none.
        """
        return []

    def note_verified(self, checks: Sequence[SignatureCheck], oks: Sequence[bool]) -> None:
        """The verdicts, in order, of the ``checks`` :meth:`extra_signatures` returned.
        Default: nothing to remember."""
        return None

    def configure(self, config: object) -> None:
        """Hand the pallet its ``Config``: the sibling APIs it declares it uses (each a small
        Protocol), bound to the pallets that serve them. FRAME's ``Config`` trait, bound by
        ``construct_runtime``: here the runtime calls this once, after building every pallet.
        """
        self.config = config

    # -- helpers
    def _now(self) -> int:
        """The block's timestamp in ms (Timestamp.Now, set by the block's inherent)."""
        return self.runtime.now()

    def deposit(self, event: EventRecord) -> None:
        self.runtime.state.deposit_event(event)

    def in_layer(self, fn: Callable[[], object]) -> bool:
        """Run ``fn`` in its own transactional layer (:func:`transactional`); a failure
        reverts only it. Hooks use this: it also catches what the executive turns into
        ``System.Other`` (an encoding overflow, a pallet bug), which raised from a hook would
        fail a gateway's submit or, from ``on_initialize``, the block itself."""
        return transactional(self.runtime.state, fn) is None

    def dispatch_nested(self, origin: Origin, call_wire: Any) -> int:
        """Dispatch a call carried inside this one (sudo, multisig); returns its weight."""
        return self.runtime.dispatch_wire(origin, call_wire)

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index,
            "calls": [
                {
                    "index": c.index,
                    "name": c.name,
                    "origin": c.origin,
                    "args": [[n, t.describe()] for n, t in c.args],
                    "doc": c.doc,
                }
                for c in sorted(self.calls.values(), key=lambda c: c.index)
                if c.since <= self.runtime.spec_version
            ],
            "storage": [getattr(self, a).describe() for a in self.storage_items],
            "events": [
                {
                    "index": v.index,
                    "name": v.name,
                    "fields": [[f, t.describe()] for f, t in v.fields],
                }
                for v in self.Event.variants
            ],
            "errors": [
                {"index": v.index, "name": v.name, "doc": v.doc} for v in self.Error.variants
            ],
            "constants": self.constants(),
        }

    def constants(self) -> dict[str, Any]:
        return {}


class BlockRejected(Exception):
    """Raised by a hook when the block itself is invalid (it is then never imported)."""
