"""Analytics reports: a periodic report's hash anchored with its figures for a closed period;
figures named like a KPI field must equal the stored record."""

from __future__ import annotations

from twinchain.primitives.codec import H256, U64
from twinchain.runtime.framework import SIGNED, Origin, call, ensure_signed
from twinchain.runtime.pallets.analytics.types import (
    KPI_FIGURES,
    U32_MAX,
    Figures,
    KpiRecord,
    Report,
    Scope,
)
from twinchain.runtime.pallets.equipment.types import OPERATE
from twinchain.runtime.pallets.roles import FACILITY_OPERATOR
from twinchain.runtime.weights import analytics as weights


class ReportsFeature:
    """Anchored reports of the Analytics pallet."""

    @call(
        2,
        weight=weights.W_REPORT,
        origin=SIGNED,
        args=(("scope", Scope), ("period", U64), ("figures", Figures), ("report_hash", H256)),
    )
    def anchor_report(
        self,
        origin: Origin,
        scope: tuple[str, int],
        period: int,
        figures: list[tuple[str, int]],
        report_hash: bytes,
    ) -> None:
        """Anchor a periodic report's hash with its figures (twin: owner, OPERATE delegate or
        facility operator; facility: its operator); KPI-named figures must match the chain."""
        who = ensure_signed(origin)
        kind, sid = scope
        if kind == "Twin":
            t = self._twin(sid)
            if not self.config.twins.has_right(sid, who, OPERATE, t) and not (
                t.facility is not None and self._is_operator(who, t.facility)
            ):
                raise self.Error.NoPermission()
            rec: KpiRecord | None = self.Kpis.get(sid, period)
        else:
            if sid > U32_MAX or self.config.facilities.facility(sid) is None:
                raise self.Error.UnknownFacility()
            if not self._is_operator(who, sid):
                raise self.Error.NotFacilityOperator()
            rec = self.FacilityKpis.get(sid, period)
        if rec is None:
            raise self.Error.PeriodNotClosed()
        names = [n for n, _ in figures]
        if len(set(names)) != len(names):
            raise self.Error.DuplicateFigure()
        for name, value in figures:
            if name in KPI_FIGURES and getattr(rec, name) != value:
                raise self.Error.FigureMismatch(name)
        if self.ReportByHash.contains((kind, sid), report_hash):
            raise self.Error.DuplicateReport()
        rid = self.NextReportId.get()
        if rid >= U64.max:
            raise self.Error.Overflow()
        self.NextReportId.put(rid + 1)
        report = Report(
            (kind, sid), period, figures, report_hash, who, self.runtime.block.number, self._now()
        )
        self.Reports.insert(rid, report)
        self.ReportsByScope.insert((kind, sid), rid, report_hash)
        self.ReportByHash.insert((kind, sid), report_hash, rid)
        self.deposit(self.Event.ReportAnchored(rid, (kind, sid), period, report_hash))

    def _is_operator(self, who: bytes, facility: int) -> bool:
        f = self.config.facilities.facility(facility)
        return f is not None and f.operator == who and self.config.roles.has(who, FACILITY_OPERATOR)
