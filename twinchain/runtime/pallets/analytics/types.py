"""Analytics' records, the KPI formulas, the treasury account and the bounds."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from twinchain.primitives import codec
from twinchain.primitives.codec import (
    H256,
    I64,
    U16,
    U32,
    U64,
    U128,
    AccountId,
    Bool,
    Enum,
    Option,
    Record,
    Str,
    Tuple,
    Vec,
)
from twinchain.primitives.hashing import Domain, hash_for
from twinchain.runtime.pallets.equipment.types import TwinId
from twinchain.runtime.pallets.facility.types import FacilityId

PPM = 1_000_000
BP = 10_000
DEFAULT_PERIOD_MS = 86_400_000
MAX_CLOSE_PER_BLOCK = 16
MAX_DUE_PERIODS = 64
MAX_CLAIM_PERIODS = 64
MAX_FIGURES = 32
MAX_FIGURE_NAME = 32

ScopeKind = Enum("ReportScope", ("Twin", "Facility"))
Scope = Tuple(ScopeKind, U64)
RewardKind = Enum("RewardKind", ("Improvement", "Data"))
Figures = Vec(Tuple(Str(MAX_FIGURE_NAME), I64), MAX_FIGURES)


def treasury_account() -> bytes:
    """The treasury's account id (no key exists for it; only this pallet moves its funds)."""
    return hash_for(Domain.ACCOUNT_DERIVE, codec.encode(["pallet", "analytics/treasury"]))


@dataclass
class PeriodAcc(Record):
    """Sums of one twin (or facility) over one period."""

    planned_s: int
    calendar_s: int
    run_s: int
    down_s: int
    units: int
    good: int
    bad: int
    energy_wh: int
    ideal_milli: int
    windows: int
    valid_windows: int
    failures: int
    repairs: int
    repair_ms: int
    FIELDS: ClassVar = {
        "planned_s": U64,
        "calendar_s": U64,
        "run_s": U64,
        "down_s": U64,
        "units": U64,
        "good": U64,
        "bad": U64,
        "energy_wh": U64,
        "ideal_milli": U64,
        "windows": U32,
        "valid_windows": U32,
        "failures": U32,
        "repairs": U32,
        "repair_ms": U64,
    }


def empty_acc() -> PeriodAcc:
    return PeriodAcc(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1


def add_acc(into: PeriodAcc, other: PeriodAcc) -> None:
    for f in fields(PeriodAcc):
        cap = U32_MAX if PeriodAcc.FIELDS[f.name] is U32 else U64_MAX
        setattr(into, f.name, min(cap, getattr(into, f.name) + getattr(other, f.name)))


@dataclass
class KpiRecord(Record):
    """A closed period of a twin (``twins`` = 1) or of a facility (its twins' sums)."""

    period: int
    twins: int
    facility: int | None
    sums: PeriodAcc
    total_units: int
    availability_ppm: int
    performance_ppm: int
    quality_ppm: int
    oee_ppm: int
    utilization_ppm: int
    mtbf_s: int | None
    mttr_ms: int | None
    energy_per_good_mwh: int | None
    FIELDS: ClassVar = {
        "period": U64,
        "twins": U32,
        "facility": Option(FacilityId),
        "sums": PeriodAcc.wire_type(),
        "total_units": U64,
        "availability_ppm": U64,
        "performance_ppm": U64,
        "quality_ppm": U64,
        "oee_ppm": U64,
        "utilization_ppm": U64,
        "mtbf_s": Option(U64),
        "mttr_ms": Option(U64),
        "energy_per_good_mwh": Option(U64),
    }


# Figures of a report that are checked against the stored record.
KPI_FIGURES = (
    "availability_ppm",
    "performance_ppm",
    "quality_ppm",
    "oee_ppm",
    "utilization_ppm",
    "mtbf_s",
    "mttr_ms",
    "energy_per_good_mwh",
    "total_units",
)


def compute_kpis(period: int, twins: int, facility: int | None, s: PeriodAcc) -> KpiRecord:
    """The KPI formulas of the module docstring, applied to one period's sums."""
    total = max(s.units, s.good + s.bad)
    planned = s.planned_s
    availability = (planned - min(s.down_s, planned)) * PPM // planned if planned else 0
    performance = total * 1000 * PPM // s.ideal_milli if s.ideal_milli else 0
    quality = min(s.good, total) * PPM // total if total else 0
    oee = availability * min(performance, PPM) * quality // (PPM * PPM)
    utilization = s.run_s * PPM // s.calendar_s if s.calendar_s else 0
    return KpiRecord(
        period=period,
        twins=twins,
        facility=facility,
        sums=s,
        total_units=total,
        availability_ppm=min(availability, U64_MAX),
        performance_ppm=min(performance, U64_MAX),
        quality_ppm=quality,
        oee_ppm=oee,
        utilization_ppm=min(utilization, U64_MAX),
        mtbf_s=s.run_s // s.failures if s.failures else None,
        mttr_ms=s.repair_ms // s.repairs if s.repairs else None,
        energy_per_good_mwh=min(s.energy_wh * 1000 // s.good, U64_MAX) if s.good else None,
    )


@dataclass
class Cursor(Record):
    """A twin's open period (receiving data) and its last closed one."""

    open: int | None
    last_closed: int | None
    first: int
    FIELDS: ClassVar = {"open": Option(U64), "last_closed": Option(U64), "first": U64}


@dataclass
class Baseline(Record):
    """A twin's own reference: means over its first ``baseline_periods`` productive periods."""

    periods: int
    oee_sum: int
    epu_sum: int
    epu_periods: int
    until: int
    established: bool
    oee_ppm: int
    energy_per_good_mwh: int | None
    FIELDS: ClassVar = {
        "periods": U32,
        "oee_sum": U64,
        "epu_sum": U64,
        "epu_periods": U32,
        "until": U64,
        "established": Bool,
        "oee_ppm": U64,
        "energy_per_good_mwh": Option(U64),
    }


@dataclass
class RewardRules(Record):
    improvement_reward: int
    improvement_periods: int
    baseline_periods: int
    min_improvement_bp: int
    data_reward_per_window: int
    max_windows_per_period: int
    FIELDS: ClassVar = {
        "improvement_reward": U128,
        "improvement_periods": U32,
        "baseline_periods": U32,
        "min_improvement_bp": U16,
        "data_reward_per_window": U128,
        "max_windows_per_period": U32,
    }

    def valid(self) -> bool:
        return (
            1 <= self.improvement_periods <= MAX_CLAIM_PERIODS
            and 1 <= self.baseline_periods <= MAX_CLAIM_PERIODS
            and 0 < self.min_improvement_bp < BP
        )


DEFAULT_RULES = RewardRules(
    improvement_reward=100 * 10**12,
    improvement_periods=3,
    baseline_periods=3,
    min_improvement_bp=200,
    data_reward_per_window=10**10,
    max_windows_per_period=1_000,
)


@dataclass
class Report(Record):
    scope: tuple[str, int]
    period: int
    figures: list[tuple[str, int]]
    report_hash: bytes
    by: bytes
    block: int
    at: int
    FIELDS: ClassVar = {
        "scope": Scope,
        "period": U64,
        "figures": Figures,
        "report_hash": H256,
        "by": AccountId,
        "block": U64,
        "at": U64,
    }


@dataclass
class Reward(Record):
    kind: str
    twin: int
    from_period: int
    to_period: int
    amount: int
    beneficiary: bytes
    block: int
    FIELDS: ClassVar = {
        "kind": RewardKind,
        "twin": TwinId,
        "from_period": U64,
        "to_period": U64,
        "amount": U128,
        "beneficiary": AccountId,
        "block": U64,
    }
