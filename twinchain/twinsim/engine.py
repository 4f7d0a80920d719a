"""The deterministic, seeded twin simulation engine (pure integers: the runtime re-runs it).

Everything here is integer arithmetic on Python ints with explicit 64-bit masking where a
PRNG needs it: no floats, no numpy, no dict-order or platform dependence, so any node (and the
Simulation pallet, on a challenge) computes bit-identical outputs for the same
``(model params, kind, inputs, seed)``.

Degradation model (``kind = "degradation"``, one per equipment class). Wear is a
dimensionless integer; the equipment fails when it reaches ``failure_threshold``. Per step of
``step_ms`` at load ``L`` (ppm of rated, 1_000_000 = rated load), duty ``D`` (ppm of the
step spent running) and temperature ``T`` (milli-degC):

    inc = wear_per_hour * hours(step) * (L/rated) ** (load_exponent_milli / 1000)
          * D * (1 + temp_coeff_ppm * max(0, T - temp_ref_milli) / 1000 / 1e6)

then, per Monte Carlo path, times a path factor drawn once in ``1 ± spread_ppm`` (unit to unit
variation) and a step factor drawn in ``1 ± noise_ppm``; a shock (``shock_wear`` more wear)
strikes with probability ``shock_ppm_per_hour`` per running hour. Internally wear is kept in
micro-units (x1e6) and every product is floored once, in the order written in the code.

PRNG: splitmix64. Path ``p`` starts from ``mix64(seed ^ mix64(p + 0x632BE59BD9B4E019))``
and draws one 64-bit word for its factor, then one per step: the low 32 bits pick the noise,
the high 32 bits decide the shock.

Scenarios (``kind``): ``WhatIf`` compares 1..4 schedules; ``FailureRisk`` runs exactly one.
A schedule is a list of segments ``(steps, load_ppm, duty_ppm)`` repeated cyclically over the
horizon of ``steps`` steps. Per schedule the output holds:

* ``failure_bp``: paths failed within the horizon, in basis points of the paths;
* ``mean_ttf_ms``: restricted mean time to failure (a surviving path counts the horizon), ms
  from ``start_ms``; a path fails at the END of the step in which its wear crosses;
* ``window_start_ms`` / ``window_end_ms``: recommended maintenance window, absolute ms: it
  closes when the cumulative failure probability first reaches ``risk_bp`` and opens when it
  first reaches ``risk_bp / 2`` (both None when ``risk_bp`` is never reached);
* ``mean_final_wear``: mean wear at the horizon (a failed path counts the threshold);
* ``operating_ms`` / ``load_ms``: mean running time and running time x load over the paths
  (production at rated speed, for what-if comparisons);
* ``fail_deciles``: cumulative failed paths at each tenth of the horizon.

Canonical forms (twinchain.primitives.codec msgpack): params, inputs and output are arrays in
fixed field order; ``model_hash`` and ``output_hash`` are keyed BLAKE3 (``hash_for``) over a
tagged array, binding the output to the model, kind, inputs bytes and seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from twinchain.primitives import codec
from twinchain.primitives.codec import CodecError
from twinchain.primitives.hashing import Domain, hash_for

PPM = 1_000_000
BP = 10_000
HOUR_MS = 3_600_000
MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1

DEGRADATION = "degradation"
MODEL_VERSION = 1
KINDS = ("WhatIf", "FailureRisk")

MAX_PARAMS = 4096  # bytes of a model's canonical params
MAX_INPUTS = 1024  # bytes of a scenario's canonical inputs
MAX_STEPS = 2_000
MAX_PATHS = 1_000
MAX_SCHEDULES = 4
MAX_SEGMENTS = 16
MAX_LOAD_PPM = 3 * PPM
MAX_LOAD_EXPONENT_MILLI = 8_000
MAX_STEP_MS = 7 * 24 * HOUR_MS
# Bound on paths x steps x schedules (the runtime re-runs a scenario inside one call): about
# 60-100 ms of pure Python at the bound; the pallet weighs a challenge by this work.
MAX_WORK = 50_000

# A hash domain of its own; the tags separate model, inputs and output hashes within it.
_DOMAIN = Domain.SIMULATION
_MODEL_TAG = b"twinsim-model-v1"
_OUTPUT_TAG = b"twinsim-output-v1"
_INPUTS_TAG = b"twinsim-inputs-v1"

_GOLDEN = 0x9E3779B97F4A7C15
_PATH_SALT = 0x632BE59BD9B4E019


class EngineError(ValueError):
    """Parameters or inputs outside what the engine accepts (never raised mid-run)."""


class ScenarioTooLarge(EngineError):
    """The inputs ask for more work (paths x steps x schedules) than ``MAX_WORK``."""


# --------------------------------------------------------------------------- PRNG


def mix64(z: int) -> int:
    """The splitmix64 finaliser (a bijection on 64-bit words)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def path_stream(seed: int, path: int, n: int) -> list[int]:
    """The first ``n`` words of path ``path``'s splitmix64 stream (for tests and tools)."""
    state = mix64(seed ^ mix64(path + _PATH_SALT))
    out = []
    for _ in range(n):
        state = (state + _GOLDEN) & MASK64
        out.append(mix64(state))
    return out


# --------------------------------------------------------------------------- fixed-point


def pow_ppm(x_ppm: int, exp_milli: int) -> int:
    """``(x_ppm / 1e6) ** (exp_milli / 1000)`` in ppm, integers only: the integer part by
    repeated multiplication, the fraction by 12 bits of repeated integer square roots."""
    if x_ppm < 0 or exp_milli < 0:
        raise EngineError("pow_ppm takes non-negative arguments")
    if x_ppm == 0:
        return 0 if exp_milli else PPM
    whole, frac = divmod(exp_milli, 1000)
    r = PPM
    for _ in range(whole):
        r = r * x_ppm // PPM
    bits = frac * 4096 // 1000  # the fraction in 12 binary digits
    root = x_ppm
    for i in range(11, -1, -1):
        root = _isqrt(root * PPM)  # x ** (1 / 2 ** (12 - i)) in ppm
        if bits >> i & 1:
            r = r * root // PPM
    return r


def _isqrt(n: int) -> int:
    return math.isqrt(n)


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class DegradationModel:
    """Per-class degradation parameters (all integers; see the module docstring)."""

    wear_per_hour: int  # wear units per running hour at rated load and reference temperature
    failure_threshold: int  # wear at which the equipment fails
    load_exponent_milli: int = 1_000  # wear grows with (load / rated) ** (this / 1000)
    temp_ref_milli: int = 40_000  # milli-degC above which temperature accelerates wear
    temp_coeff_ppm: int = 0  # extra wear per degC above the reference, ppm
    noise_ppm: int = 0  # per-step multiplicative noise amplitude (uniform, +-)
    spread_ppm: int = 0  # per-path (unit to unit) wear-rate spread (uniform, +-)
    shock_ppm_per_hour: int = 0  # probability per running hour of a shock, ppm
    shock_wear: int = 0  # wear a shock adds

    FIELDS = (
        "wear_per_hour",
        "failure_threshold",
        "load_exponent_milli",
        "temp_ref_milli",
        "temp_coeff_ppm",
        "noise_ppm",
        "spread_ppm",
        "shock_ppm_per_hour",
        "shock_wear",
    )

    def validate(self) -> None:
        vals = [getattr(self, f) for f in self.FIELDS]
        if any(type(v) is not int for v in vals):
            raise EngineError("model parameters must be integers")
        if not 0 < self.wear_per_hour < 1 << 48 or not 0 < self.failure_threshold < 1 << 48:
            raise EngineError("wear_per_hour and failure_threshold must be in 1..2^48")
        if not 0 <= self.load_exponent_milli <= MAX_LOAD_EXPONENT_MILLI:
            raise EngineError(f"load_exponent_milli must be 0..{MAX_LOAD_EXPONENT_MILLI}")
        if not -(1 << 40) <= self.temp_ref_milli < 1 << 40:
            raise EngineError("temp_ref_milli out of range")
        if not 0 <= self.temp_coeff_ppm <= PPM:
            raise EngineError("temp_coeff_ppm must be 0..1e6")
        if not 0 <= self.noise_ppm <= PPM or not 0 <= self.spread_ppm < PPM:
            raise EngineError("noise_ppm must be 0..1e6 and spread_ppm 0..1e6-1")
        if not 0 <= self.shock_ppm_per_hour <= PPM or not 0 <= self.shock_wear < 1 << 48:
            raise EngineError("shock_ppm_per_hour must be 0..1e6, shock_wear 0..2^48")

    def to_wire(self) -> list[Any]:
        return [DEGRADATION, MODEL_VERSION, [getattr(self, f) for f in self.FIELDS]]

    def encode(self) -> bytes:
        self.validate()
        return codec.encode(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> DegradationModel:
        """Canonical params bytes -> model; EngineError on anything else."""
        try:
            wire = codec.decode(data, MAX_PARAMS)
        except CodecError as exc:
            raise EngineError(f"params: {exc}") from None
        if (
            type(wire) is not list
            or len(wire) != 3
            or wire[0] != DEGRADATION
            or wire[1] != MODEL_VERSION
            or type(wire[2]) is not list
            or len(wire[2]) != len(cls.FIELDS)
        ):
            raise EngineError(f"params must be ['{DEGRADATION}', {MODEL_VERSION}, [9 integers]]")
        m = cls(*wire[2])
        m.validate()
        return m


def model_hash(equipment_class: str, kind: str, params: bytes, version: int) -> bytes:
    """The id a ``degradation`` model must be registered under."""
    return hash_for(_DOMAIN, codec.encode([_MODEL_TAG, equipment_class, kind, params, version]))


# Reference models of the factory simulator's classes (wear 1e6 = failure): a starting point
# for genesis and for workers; a real deployment registers models fitted to its fleet.
CLASS_MODELS: dict[str, DegradationModel] = {
    "cnc_mill": DegradationModel(
        wear_per_hour=400, failure_threshold=PPM, load_exponent_milli=1_800,
        temp_ref_milli=45_000, temp_coeff_ppm=30_000, noise_ppm=250_000, spread_ppm=150_000,
        shock_ppm_per_hour=500, shock_wear=40_000,
    ),
    "pump": DegradationModel(
        wear_per_hour=250, failure_threshold=PPM, load_exponent_milli=1_500,
        temp_ref_milli=60_000, temp_coeff_ppm=20_000, noise_ppm=200_000, spread_ppm=200_000,
        shock_ppm_per_hour=300, shock_wear=60_000,
    ),
    "compressor": DegradationModel(
        wear_per_hour=300, failure_threshold=PPM, load_exponent_milli=2_000,
        temp_ref_milli=70_000, temp_coeff_ppm=25_000, noise_ppm=200_000, spread_ppm=150_000,
        shock_ppm_per_hour=400, shock_wear=50_000,
    ),
}  # fmt: skip


def class_model(equipment_class: str, version: int = 1) -> tuple[bytes, bytes]:
    """(model hash, canonical params) of the reference model of a class (KeyError if none)."""
    params = CLASS_MODELS[equipment_class].encode()
    return model_hash(equipment_class, DEGRADATION, params, version), params


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Segment:
    steps: int
    load_ppm: int
    duty_ppm: int

    def to_wire(self) -> list[int]:
        return [self.steps, self.load_ppm, self.duty_ppm]


@dataclass(frozen=True)
class ScenarioInputs:
    """What a scenario runs on: the twin's starting state and the schedules to compare."""

    start_ms: int  # absolute time the horizon starts (windows are reported absolute)
    start_wear: int  # wear at the start (from the twin's health score)
    temperature_milli: int  # operating temperature, milli-degC
    step_ms: int
    steps: int
    paths: int
    risk_bp: int  # cumulative failure probability that closes the maintenance window
    schedules: tuple[tuple[Segment, ...], ...]

    def to_wire(self) -> list[Any]:
        return [
            self.start_ms,
            self.start_wear,
            self.temperature_milli,
            self.step_ms,
            self.steps,
            self.paths,
            self.risk_bp,
            [[s.to_wire() for s in sch] for sch in self.schedules],
        ]

    def encode(self) -> bytes:
        self.validate()
        data = codec.encode(self.to_wire())
        if len(data) > MAX_INPUTS:
            raise EngineError(f"inputs longer than {MAX_INPUTS} bytes")
        return data

    @property
    def work(self) -> int:
        return self.paths * self.steps * len(self.schedules)

    def validate(self, kind: str | None = None) -> None:
        ints = [
            self.start_ms,
            self.start_wear,
            self.temperature_milli,
            self.step_ms,
            self.steps,
            self.paths,
            self.risk_bp,
        ]
        if any(type(v) is not int for v in ints):
            raise EngineError("inputs must be integers")
        if not 0 <= self.start_ms < 1 << 63 or not 0 <= self.start_wear < 1 << 48:
            raise EngineError("start_ms or start_wear out of range")
        if not -(1 << 40) <= self.temperature_milli < 1 << 40:
            raise EngineError("temperature_milli out of range")
        if not 0 < self.step_ms <= MAX_STEP_MS:
            raise EngineError(f"step_ms must be 1..{MAX_STEP_MS}")
        if not 0 < self.steps <= MAX_STEPS or not 0 < self.paths <= MAX_PATHS:
            raise EngineError(f"steps must be 1..{MAX_STEPS}, paths 1..{MAX_PATHS}")
        if not 0 < self.risk_bp <= BP:
            raise EngineError("risk_bp must be 1..10000")
        if not 0 < len(self.schedules) <= MAX_SCHEDULES:
            raise EngineError(f"1..{MAX_SCHEDULES} schedules")
        if kind == "FailureRisk" and len(self.schedules) != 1:
            raise EngineError("a FailureRisk scenario has exactly one schedule")
        if kind is not None and kind not in KINDS:
            raise EngineError(f"unknown scenario kind {kind!r}")
        for sch in self.schedules:
            if not 0 < len(sch) <= MAX_SEGMENTS:
                raise EngineError(f"a schedule has 1..{MAX_SEGMENTS} segments")
            for s in sch:
                if any(type(v) is not int for v in (s.steps, s.load_ppm, s.duty_ppm)):
                    raise EngineError("segments are integers")
                if not 0 < s.steps <= MAX_STEPS:
                    raise EngineError(f"segment steps must be 1..{MAX_STEPS}")
                if not 0 <= s.load_ppm <= MAX_LOAD_PPM or not 0 <= s.duty_ppm <= PPM:
                    raise EngineError("load_ppm must be 0..3e6 and duty_ppm 0..1e6")
        if self.work > MAX_WORK:
            raise ScenarioTooLarge(f"paths x steps x schedules = {self.work} > {MAX_WORK}")

    @classmethod
    def decode(cls, data: bytes, kind: str | None = None) -> ScenarioInputs:
        """Canonical inputs bytes -> inputs (validated); EngineError on anything else."""
        try:
            w = codec.decode(data, MAX_INPUTS)
        except CodecError as exc:
            raise EngineError(f"inputs: {exc}") from None
        try:
            if type(w) is not list or len(w) != 8 or type(w[7]) is not list:
                raise TypeError
            schedules = []
            for sch in w[7]:
                if type(sch) is not list:
                    raise TypeError
                segs = []
                for seg in sch:
                    if type(seg) is not list or len(seg) != 3:
                        raise TypeError
                    segs.append(Segment(*seg))
                schedules.append(tuple(segs))
            inputs = cls(*w[:7], tuple(schedules))
        except TypeError:
            raise EngineError(
                "inputs must be [start_ms, start_wear, temperature_milli, step_ms, steps, "
                "paths, risk_bp, [[[steps, load_ppm, duty_ppm], ...], ...]]"
            ) from None
        inputs.validate(kind)
        return inputs


def inputs_hash(data: bytes) -> bytes:
    return hash_for(_DOMAIN, codec.encode([_INPUTS_TAG, data]))


# --------------------------------------------------------------------------- output


@dataclass(frozen=True)
class ScheduleResult:
    failure_bp: int
    mean_ttf_ms: int
    window_start_ms: int | None
    window_end_ms: int | None
    mean_final_wear: int
    operating_ms: int
    load_ms: int
    fail_deciles: tuple[int, ...] = field(default=())

    def to_wire(self) -> list[Any]:
        return [
            self.failure_bp,
            self.mean_ttf_ms,
            self.window_start_ms,
            self.window_end_ms,
            self.mean_final_wear,
            self.operating_ms,
            self.load_ms,
            list(self.fail_deciles),
        ]


@dataclass(frozen=True)
class ScenarioOutput:
    kind: str
    results: tuple[ScheduleResult, ...]

    def to_wire(self) -> list[Any]:
        return [self.kind, [r.to_wire() for r in self.results]]

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    def summary(self) -> tuple[int, int, int | None, int | None]:
        """What the chain stores next to the hash: the first schedule's headline figures."""
        r = self.results[0]
        return r.failure_bp, r.mean_ttf_ms, r.window_start_ms, r.window_end_ms


def output_hash(model: bytes, kind: str, inputs: bytes, seed: int, output: ScenarioOutput) -> bytes:
    """The hash anchored on chain: binds the output to model, kind, inputs bytes and seed."""
    return hash_for(
        _DOMAIN, codec.encode([_OUTPUT_TAG, model, kind, inputs, seed, output.to_wire()])
    )


# --------------------------------------------------------------------------- the run


def _run_schedule(
    m: DegradationModel, inp: ScenarioInputs, sched: tuple[Segment, ...], seed: int
) -> ScheduleResult:
    steps, paths, step_ms = inp.steps, inp.paths, inp.step_ms
    # Per-segment rates, once: wear increment in micro-units at path and noise factor 1.
    over = max(0, inp.temperature_milli - m.temp_ref_milli)
    temp_f = PPM + m.temp_coeff_ppm * over // 1000
    seg_inc, seg_shock = [], []
    for s in sched:
        load_f = pow_ppm(s.load_ppm, m.load_exponent_milli)
        inc = m.wear_per_hour * step_ms * load_f * s.duty_ppm * temp_f // (HOUR_MS * PPM * PPM)
        seg_inc.append(inc)
        shock = m.shock_ppm_per_hour * step_ms * s.duty_ppm * (1 << 32) // (HOUR_MS * PPM * PPM)
        seg_shock.append(min(shock, 1 << 32))
    # The cyclic schedule unrolled over the horizon, with prefix sums of running time.
    inc_at, shock_at = [], []
    op_prefix, load_prefix = [0], [0]
    cycle = [i for i, s in enumerate(sched) for _ in range(s.steps)]
    for i in range(steps):
        k = cycle[i % len(cycle)]
        inc_at.append(seg_inc[k])
        shock_at.append(seg_shock[k])
        run = step_ms * sched[k].duty_ppm
        op_prefix.append(op_prefix[-1] + run)
        load_prefix.append(load_prefix[-1] + run * sched[k].load_ppm // PPM)
    thr = m.failure_threshold * PPM
    shock_u = m.shock_wear * PPM
    noise, noise_span = m.noise_ppm, 2 * m.noise_ppm + 1
    spread_span = 2 * m.spread_ppm + 1
    pp = PPM * PPM
    fails_at = [0] * steps
    ttf_sum = 0
    wear_sum = 0
    op_sum = 0
    load_sum = 0
    start_u = inp.start_wear * PPM
    for p in range(paths):
        state = mix64(seed ^ mix64(p + _PATH_SALT))
        # One draw for the path's rate factor.
        state = (state + _GOLDEN) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z ^= z >> 31
        path_f = PPM - m.spread_ppm + ((z & MASK32) * spread_span >> 32)
        wear = start_u
        failed = -1
        if wear >= thr:
            failed = 0
        else:
            for i in range(steps):
                state = (state + _GOLDEN) & MASK64
                z = state
                z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
                z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
                z ^= z >> 31
                nf = PPM - noise + ((z & MASK32) * noise_span >> 32)
                wear += inc_at[i] * path_f * nf // pp
                if (z >> 32) < shock_at[i]:
                    wear += shock_u
                if wear >= thr:
                    failed = i
                    break
        if failed >= 0:
            fails_at[failed] += 1
            ttf_sum += (failed + 1) * step_ms
            wear_sum += m.failure_threshold
            op_sum += op_prefix[failed + 1]
            load_sum += load_prefix[failed + 1]
        else:
            ttf_sum += steps * step_ms
            wear_sum += wear // PPM
            op_sum += op_prefix[steps]
            load_sum += load_prefix[steps]
    failed_total = sum(fails_at)
    window_start = window_end = None
    half_at = end_at = None
    cum = 0
    deciles = []
    next_decile = 1
    for i, f in enumerate(fails_at):
        cum += f
        if half_at is None and cum * BP * 2 >= inp.risk_bp * paths and cum:
            half_at = i
        if end_at is None and cum * BP >= inp.risk_bp * paths and cum:
            end_at = i
        while next_decile <= 10 and (i + 1) * 10 >= next_decile * steps:
            deciles.append(cum)
            next_decile += 1
    if end_at is not None and half_at is not None:
        window_start = inp.start_ms + (half_at + 1) * step_ms
        window_end = inp.start_ms + (end_at + 1) * step_ms
    return ScheduleResult(
        failure_bp=failed_total * BP // paths,
        mean_ttf_ms=ttf_sum // paths,
        window_start_ms=window_start,
        window_end_ms=window_end,
        mean_final_wear=wear_sum // paths,
        operating_ms=op_sum // (paths * PPM),
        load_ms=load_sum // (paths * PPM),
        fail_deciles=tuple(deciles),
    )


def run(model: DegradationModel, kind: str, inputs: ScenarioInputs, seed: int) -> ScenarioOutput:
    """Run a scenario; the same arguments always give the same output, on every node."""
    if type(seed) is not int or not 0 <= seed <= MASK64:
        raise EngineError("seed must be a u64")
    model.validate()
    inputs.validate(kind)
    results = tuple(_run_schedule(model, inputs, sch, seed) for sch in inputs.schedules)
    return ScenarioOutput(kind, results)


def run_encoded(
    model: bytes, params: bytes, kind: str, inputs: bytes, seed: int
) -> tuple[ScenarioOutput, bytes]:
    """Decode, run and hash exactly as the Simulation pallet does on a challenge."""
    out = run(DegradationModel.decode(params), kind, ScenarioInputs.decode(inputs, kind), seed)
    return out, output_hash(model, kind, inputs, seed, out)


# --------------------------------------------------------------------------- from twin state


def start_wear_from_health(model: DegradationModel, health_bp: int | None) -> int:
    """Wear implied by a health score (10000 = as new, 0 = at the failure threshold)."""
    if health_bp is None:
        return 0
    h = max(0, min(BP, health_bp))
    return model.failure_threshold * (BP - h) // BP


def default_inputs(
    model: DegradationModel,
    *,
    start_ms: int,
    health_bp: int | None,
    temperature_milli: int,
    load_ppm: int = PPM,
    duty_ppm: int = PPM,
    step_ms: int = HOUR_MS,
    steps: int = 168,
    paths: int = 200,
    risk_bp: int = 1_000,
    alternatives: tuple[tuple[int, int], ...] = (),
) -> ScenarioInputs:
    """Inputs for a twin's current state: one schedule at ``load``/``duty`` plus one per
    (load_ppm, duty_ppm) alternative (a what-if)."""
    base = ((Segment(1, load_ppm, duty_ppm),),)
    alts = tuple((Segment(1, lo, du),) for lo, du in alternatives)
    return ScenarioInputs(
        start_ms,
        start_wear_from_health(model, health_bp),
        temperature_milli,
        step_ms,
        steps,
        paths,
        risk_bp,
        base + alts,
    )
