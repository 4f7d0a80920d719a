"""Maintenance work orders: escrowed payment, assignment, downtime scheduled per production
line, start and deadline, completion claims verified by telemetry or an inspector, expiry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinchain.primitives.codec import H256, U32, U64, U128, AccountId, Bool, Option, Vec
from twinchain.runtime.framework import SIGNED, Origin, call, ensure_signed
from twinchain.runtime.pallets.equipment.types import OPERATE, TwinId
from twinchain.runtime.pallets.maintenance.types import (
    COUNTER_MAX,
    MAX_COMPLETIONS_PER_CLOSE,
    MAX_DEADLINE_PUSH,
    MAX_DOWNTIME_MS,
    MAX_EXPIRIES_PER_BLOCK,
    MAX_LINE_DOWNTIMES,
    MAX_OPEN_ORDERS,
    MAX_PARTS,
    NO_FACILITY,
    Alert,
    Costs,
    OrderKind,
    Part,
    PartRecord,
    ProviderStats,
    Threshold,
    Verification,
    WorkOrder,
)
from twinchain.runtime.pallets.roles import CERTIFIED_AUDITOR, FACILITY_OPERATOR, SERVICE_PROVIDER
from twinchain.runtime.pallets.support import found
from twinchain.runtime.weights import maintenance as weights

if TYPE_CHECKING:
    from twinchain.runtime.pallets.equipment.types import TwinInfo

# A line's scheduled windows are iterated: a base plus each window of a full line.
W_SCHEDULE = weights.W_SCHEDULE_BASE + weights.W_SCHEDULE_PER_WINDOW * MAX_LINE_DOWNTIMES


class WorkOrdersFeature:
    """Work orders of the Maintenance pallet."""

    # ------------------------------------------------------------------ helpers
    def _order(self, oid: int) -> WorkOrder:
        return found(self.Orders.get(oid), self.Error.UnknownOrder)

    def _status(self, o: WorkOrder, *allowed: str) -> None:
        if o.status not in allowed:
            raise self.Error.WrongStatus(f"{o.status}, needs {' or '.join(allowed)}")

    def _line_key(self, twin: int, t: TwinInfo) -> tuple[int, int] | None:
        line = self.Lines.get(twin)
        if line is None:
            return None
        return (NO_FACILITY if t.facility is None else t.facility, line)

    def _unschedule(self, oid: int, o: WorkOrder) -> None:
        if o.line is not None:
            self.LineDowntime.remove(o.line, oid)

    def _finish(self, oid: int, o: WorkOrder, status: str) -> None:
        """Write a terminal state and drop the order from every queue and index of work."""
        o.status = status
        self._unschedule(oid, o)
        verifying: list[int] = self.Verifying.get(o.twin) or []
        if oid in verifying:
            rest = [v for v in verifying if v != oid]
            if rest:
                self.Verifying.insert(o.twin, rest)
            else:
                self.Verifying.remove(o.twin)
        if o.deadline:
            if self.Expiries.contains(o.deadline, oid):
                self.Expiries.remove(o.deadline, oid)
                self.ExpiryCount.insert(o.deadline, max(0, self.ExpiryCount.get(o.deadline) - 1))
        self.OpenOrders.insert(o.twin, max(0, self.OpenOrders.get(o.twin) - 1))
        self.Orders.insert(oid, o)

    def _create(
        self,
        payer: bytes,
        twin: int,
        alert: int | None,
        kind: str,
        description: bytes,
        payment: int,
        verification: str,
    ) -> int:
        if self.OpenOrders.get(twin) >= MAX_OPEN_ORDERS:
            raise self.Error.TooManyOpenOrders()
        if payment and self.config.currency.free_balance(payer) < payment:
            raise self.Error.InsufficientBalance()
        oid = self.NextOrderId.get()
        if oid >= U64.max:
            raise self.Error.Overflow()
        if payment:
            self.config.currency.reserve(payer, payment)
        self.NextOrderId.put(oid + 1)
        o = WorkOrder(
            twin, payer, alert, kind, description, payment, verification, None, "Created",
            None, None, self._now(), 0, 0, 0, 0, None, [], 0, None,
        )  # fmt: skip
        self.Orders.insert(oid, o)
        self.TwinOrders.insert(twin, oid, True)
        self.OpenOrders.insert(twin, self.OpenOrders.get(twin) + 1)
        self.deposit(self.Event.WorkOrderCreated(oid, twin, payer, alert, payment))
        return oid

    # ------------------------------------------------------------------ lines
    @call(4, weight=W_SCHEDULE, origin=SIGNED, args=(("twin", TwinId), ("line", Option(U32))))
    def set_line(self, origin: Origin, twin: int, line: int | None) -> None:
        """Put the twin on a production line of its facility, or take it off (owner, OPERATE
        delegate, or the facility's operator)."""
        who = ensure_signed(origin)
        t = self._live(twin)
        if not self.config.twins.has_right(twin, who, OPERATE, t):
            f = None if t.facility is None else self.config.facilities.facility(t.facility)
            if f is None or f.operator != who or not self.config.roles.has(who, FACILITY_OPERATOR):
                raise self.Error.NotLineSetter()
        old = self._line_key(twin, t)
        if old is not None:  # bounded: at most MAX_LINE_DOWNTIMES windows per line
            for oid, _ in self.LineDowntime.iter_prefix(old):
                if self.TwinOrders.contains(twin, oid):
                    raise self.Error.LineBusy()
        if line is None:
            self.Lines.remove(twin)
        else:
            self.Lines.insert(twin, line)
        self.deposit(self.Event.LineSet(twin, line))

    # ------------------------------------------------------------------ work orders
    @call(
        5,
        weight=weights.W_ORDER,
        origin=SIGNED,
        args=(
            ("twin", TwinId),
            ("kind", OrderKind),
            ("description", H256),
            ("payment", U128),
            ("verification", Verification),
        ),
    )
    def create(
        self,
        origin: Origin,
        twin: int,
        kind: str,
        description: bytes,
        payment: int,
        verification: str,
    ) -> None:
        """Open a work order by hand and reserve its payment from the sender (owner or
        OPERATE delegate) as escrow."""
        who = ensure_signed(origin)
        self._ensure_operate(who, twin)
        self._create(who, twin, None, kind, description, payment, verification)

    @call(
        6,
        weight=weights.W_ORDER,
        origin=SIGNED,
        args=(
            ("alert", U64),
            ("description", H256),
            ("payment", U128),
            ("verification", Verification),
        ),
    )
    def create_from_alert(
        self, origin: Origin, alert: int, description: bytes, payment: int, verification: str
    ) -> None:
        """Open a corrective work order for an open alert (owner or OPERATE delegate); the
        payment is reserved as escrow and Analytics records the failure."""
        who = ensure_signed(origin)
        a: Alert | None = self.Alerts.get(alert)
        if a is None:
            raise self.Error.UnknownAlert()
        self._ensure_operate(who, a.twin)
        if a.status != "Open":
            raise self.Error.AlertNotOpen()
        if a.work_order is not None:
            raise self.Error.AlertHasOrder()
        oid = self._create(who, a.twin, alert, "Corrective", description, payment, verification)
        a.work_order = oid
        self.Alerts.insert(alert, a)
        self.config.failures.note_failure(a.twin, a.raised_at)

    @call(7, weight=weights.W_SMALL, origin=SIGNED, args=(("order", U64), ("provider", AccountId)))
    def assign(self, origin: Origin, order: int, provider: bytes) -> None:
        """Assign (or reassign, before scheduling) a ServiceProvider (the payer)."""
        who = ensure_signed(origin)
        o = self._order(order)
        if o.payer != who:
            raise self.Error.NotPayer()
        self._status(o, "Created", "Assigned")
        if not self.config.roles.has(provider, SERVICE_PROVIDER):
            raise self.Error.NotServiceProvider()
        o.provider, o.status = provider, "Assigned"
        self.Orders.insert(order, o)
        self.deposit(self.Event.WorkOrderAssigned(order, provider))

    @call(
        8,
        weight=W_SCHEDULE,
        origin=SIGNED,
        args=(("order", U64), ("start", U64), ("end", U64)),
    )
    def schedule(self, origin: Origin, order: int, start: int, end: int) -> None:
        """Schedule (or move) the downtime window ``[start, end)`` in ms (the payer or the
        assigned provider); it must not overlap other downtime on the twin's line."""
        who = ensure_signed(origin)
        o = self._order(order)
        if who not in (o.payer, o.provider):
            raise self.Error.NotPayer()
        self._status(o, "Assigned", "Scheduled")
        if not start < end or end - start > MAX_DOWNTIME_MS or end <= self._now():
            raise self.Error.InvalidWindow()
        t = self._live(o.twin)
        line = self._line_key(o.twin, t)
        if line is not None:
            n = 0
            for other, (s, e) in self.LineDowntime.iter_prefix(line):
                if other == order:
                    continue
                n += 1
                if start < e and s < end:
                    raise self.Error.DowntimeOverlap(f"work order {other}")
            if n >= MAX_LINE_DOWNTIMES:
                raise self.Error.LineFull()
        self._unschedule(order, o)
        if line is not None:
            self.LineDowntime.insert(line, order, (start, end))
        o.window, o.line, o.status = (start, end), line, "Scheduled"
        self.Orders.insert(order, o)
        self.deposit(self.Event.WorkOrderScheduled(order, start, end))

    @call(9, weight=weights.W_ORDER, origin=SIGNED, args=(("order", U64),))
    def start(self, origin: Origin, order: int) -> None:
        """Begin the work once its window began (provider or payer): the twin goes into
        Maintenance and the verification deadline is set."""
        who = ensure_signed(origin)
        o = self._order(order)
        if who not in (o.payer, o.provider):
            raise self.Error.NotProvider()
        self._status(o, "Scheduled")
        now = self._now()
        if o.window is None or now < o.window[0]:
            raise self.Error.WindowNotStarted()
        t = self._live(o.twin)
        block = self.runtime.block.number + max(1, self.DeadlineBlocks.get())
        for _ in range(MAX_DEADLINE_PUSH):
            if self.ExpiryCount.get(block) < MAX_EXPIRIES_PER_BLOCK:
                break
            block += 1
        else:
            raise self.Error.SchedulerFull()
        if t.lifecycle == "Active":
            self.config.twin_service.set_lifecycle_by(o.twin, "Maintenance", who)
        self.Expiries.insert(block, order, True)
        self.ExpiryCount.insert(block, self.ExpiryCount.get(block) + 1)
        o.status, o.started_at, o.deadline = "InProgress", now, block
        self.Orders.insert(order, o)
        self.deposit(self.Event.WorkOrderStarted(order, block))

    @call(
        10,
        weight=weights.W_ORDER,
        origin=SIGNED,
        args=(("order", U64), ("report", H256), ("parts", Vec(Part.wire_type(), MAX_PARTS))),
    )
    def claim_completion(
        self, origin: Origin, order: int, report: bytes, parts: list[Part]
    ) -> None:
        """Claim the work done, with the report hash and the parts replaced (the provider)."""
        who = ensure_signed(origin)
        o = self._order(order)
        if who != o.provider:
            raise self.Error.NotProvider()
        self._status(o, "InProgress")
        if sum(p.cost for p in parts) > U128.max:
            raise self.Error.Overflow("the parts' total cost exceeds u128")
        o.status, o.claimed_at, o.report, o.parts, o.ok_windows = (
            "Claimed", self._now(), report, parts, 0
        )  # fmt: skip
        self.Orders.insert(order, o)
        if o.verification == "Telemetry":
            self.Verifying.insert(o.twin, [*(self.Verifying.get(o.twin) or []), order])
        self.deposit(self.Event.CompletionClaimed(order, report, len(parts)))

    @call(
        11,
        weight=weights.W_COMPLETE,
        origin=SIGNED,
        args=(("order", U64), ("approve", Bool), ("report", H256)),
    )
    def inspect(self, origin: Origin, order: int, approve: bool, report: bytes) -> None:
        """Approve (verify: the escrow is released) or reject (back to rework) a claimed
        completion as certified inspector (a CertifiedAuditor with no stake in the order)."""
        who = ensure_signed(origin)
        if not self.config.roles.has(who, CERTIFIED_AUDITOR):
            raise self.Error.NotInspector()
        o = self._order(order)
        t = self._live(o.twin)
        if who in (o.payer, o.provider, t.owner):
            raise self.Error.ConflictOfInterest()
        if o.verification != "Inspector":
            raise self.Error.WrongVerification()
        self._status(o, "Claimed")
        self.deposit(self.Event.Inspected(order, who, approve, report))
        if approve:
            self._complete(order, o, who)
        else:
            o.status = "InProgress"
            self.Orders.insert(order, o)

    @call(12, weight=weights.W_ORDER, origin=SIGNED, args=(("order", U64),))
    def cancel(self, origin: Origin, order: int) -> None:
        """Cancel an order that has not started (the payer): the escrow returns."""
        who = ensure_signed(origin)
        o = self._order(order)
        if who != o.payer:
            raise self.Error.NotPayer()
        self._status(o, "Created", "Assigned", "Scheduled")
        if o.payment:
            self.config.currency.unreserve(o.payer, o.payment)
            self.deposit(self.Event.EscrowReturned(order, o.payer, o.payment))
        self._finish(order, o, "Cancelled")
        self.deposit(self.Event.WorkOrderCancelled(order))

    # ------------------------------------------------------------------ completion and expiry
    def _complete(self, oid: int, o: WorkOrder, by: bytes | None) -> None:
        """The order is verified: pay, record service and parts, totals, lifecycle, alert."""
        if o.provider is None:  # claimed orders always have one
            raise self.Error.WrongStatus("no provider")
        cfg = self.config
        now = self._now()
        if o.payment:
            cfg.currency.repatriate_reserved(o.payer, o.provider, o.payment)
        o.completed_at, o.verified_by = now, by
        self._finish(oid, o, "Verified")
        t = self._live(o.twin)
        if t.lifecycle == "Maintenance":
            cfg.twin_service.set_lifecycle_by(o.twin, "Active", o.provider)
        report = o.report or b"\x00" * 32
        cfg.twin_service.record_service_by(o.twin, o.provider, o.kind, report, o.payment, oid)
        n = self.PartCount.get(o.twin)
        parts_cost = 0
        for p in o.parts:
            self.Parts.insert(o.twin, n, PartRecord(p.part, p.quantity, p.cost, oid, now))
            n += 1
            parts_cost += p.cost
        self.PartCount.insert(o.twin, n)
        c: Costs = self.TwinCosts.get(o.twin) or Costs(0, 0, 0)
        self.TwinCosts.insert(
            o.twin,
            Costs(
                min(c.orders + 1, U32.max),
                min(c.service + o.payment, U128.max),
                min(c.parts + parts_cost, U128.max),
            ),
        )
        s: ProviderStats = self.Providers.get(o.provider) or ProviderStats(0, 0, 0)
        s.completed = min(s.completed + 1, U32.max)
        s.earned = min(s.earned + o.payment, U128.max)
        self.Providers.insert(o.provider, s)
        if o.alert is not None:
            a: Alert | None = self.Alerts.get(o.alert)
            if a is not None and a.status in ("Open", "Cleared"):
                self._close_alert(o.alert, a, "Resolved")
        cfg.failures.note_repair(o.twin, o.started_at, now)
        if t.facility is not None:
            note = cfg.verified_maintenance.note_verified_maintenance
            self.in_layer(lambda: note(t.facility, report))
        if o.payment:
            self.deposit(self.Event.EscrowReleased(oid, o.provider, o.payment))
        self.deposit(self.Event.WorkOrderVerified(oid, o.twin, o.provider, by))

    def _expire(self, oid: int, o: WorkOrder) -> None:
        if o.payment:
            self.config.currency.unreserve(o.payer, o.payment)
        if o.provider is not None:
            s: ProviderStats = self.Providers.get(o.provider) or ProviderStats(0, 0, 0)
            s.expired = min(s.expired + 1, U32.max)
            self.Providers.insert(o.provider, s)
        o.deadline = 0  # its queue entry is being consumed
        self._finish(oid, o, "Expired")
        if o.payment:
            self.deposit(self.Event.EscrowReturned(oid, o.payer, o.payment))
        self.deposit(self.Event.WorkOrderExpired(oid))

    def on_initialize(self, number: int) -> int:
        """Expire the orders whose deadline is this block (at most MAX_EXPIRIES_PER_BLOCK)."""
        due = [oid for oid, _ in self.Expiries.iter_prefix(number)]
        if not due:
            return weights.W_INIT  # the queue's (empty) prefix was read all the same
        expired = 0
        for oid in due:
            o: WorkOrder | None = self.Orders.get(oid)
            if o is not None and o.status in ("InProgress", "Claimed"):
                self.in_layer(lambda oid=oid, o=o: self._expire(oid, o))
                expired += 1
        self.Expiries.remove_prefix(number)
        self.ExpiryCount.remove(number)
        return weights.W_INIT + weights.W_EXPIRY_READ * len(due) + weights.W_EXPIRE * expired

    # ------------------------------------------------------------------ window hook
    def _verify_by_window(
        self, twin: int, start: int, aggs: dict[int, Any], devs: dict[int, tuple[int, Threshold]]
    ) -> None:
        """Count a closed window for (or against) the claimed orders its telemetry verifies;
        complete at most MAX_COMPLETIONS_PER_CLOSE that reach K good windows."""
        verifying: list[int] = self.Verifying.get(twin) or []
        if not verifying:
            return
        env = self.config.twins.envelopes(twin)
        good = all(
            env[m].min <= agg.min and agg.max <= env[m].max for m, agg in aggs.items() if m in env
        ) and all(abs(dev) <= th.clear_bp for dev, th in devs.values())
        k = max(1, self.VerifyWindows.get())
        completions = 0
        for oid in verifying:
            o: WorkOrder = self.Orders.get(oid)
            if o.ok_windows < k:
                if start < o.claimed_at:
                    continue  # the window began before the claim: not evidence of the repair
                o.ok_windows = min(o.ok_windows + 1, COUNTER_MAX) if good else 0
                self.Orders.insert(oid, o)
                self.deposit(self.Event.VerificationProgress(oid, o.ok_windows))
            # Verified by its telemetry; a completion costs more than the rest of the close,
            # so at most MAX_COMPLETIONS_PER_CLOSE run here and the others at the next close.
            if o.ok_windows >= k and completions < MAX_COMPLETIONS_PER_CLOSE:
                completions += 1
                if not self.in_layer(
                    lambda oid=oid: self._complete(oid, self.Orders.get(oid), None)
                ):
                    # Its layer reverted (e.g. the escrow is gone): it needs K new windows, and
                    # does not hold up the twin's other orders meanwhile.
                    o.ok_windows = 0
                    self.Orders.insert(oid, o)
                    self.deposit(self.Event.VerificationProgress(oid, 0))

    # ------------------------------------------------------------------ API for other pallets
    def order(self, oid: int) -> WorkOrder | None:
        return self.Orders.get(oid)  # type: ignore[no-any-return]

    def parts(self, twin: int) -> list[PartRecord]:
        return [self.Parts.get(twin, i) for i in range(self.PartCount.get(twin))]
