"""The alarm lifecycle of SCADA and IoT platforms on Maintenance's alerts (spec 5): an open
alert is active and unacknowledged until someone acknowledges it; it may be assigned to an
account and carry comments; it is cleared by the paths that close it (its telemetry back
within the clear level, a dismissal, a verified work order).

Each step is a signed call recorded on chain with who did it: the twin's owner, an OPERATE
delegate or the operator of the twin's facility (the people of the plant that runs it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinchain.primitives.codec import U64, AccountId, Option, Str
from twinchain.runtime.framework import SIGNED, Origin, call, ensure_signed
from twinchain.runtime.pallets.equipment.types import OPERATE
from twinchain.runtime.pallets.maintenance.types import (
    MAX_COMMENT,
    MAX_COMMENTS,
    Alert,
    AlertAction,
    Assignment,
    Comment,
)
from twinchain.runtime.weights import maintenance as weights

if TYPE_CHECKING:
    from twinchain.runtime.pallets.equipment.types import TwinInfo

SINCE = 5


class AlarmsFeature:
    """Acknowledge, assign and comment on the Maintenance pallet's alerts."""

    def _ensure_handler(self, who: bytes, alert: int) -> tuple[Alert, TwinInfo]:
        """The alert and its twin, when ``who`` may handle the alert: the twin's owner, an
        OPERATE delegate or its facility's operator."""
        a: Alert | None = self.Alerts.get(alert)
        if a is None:
            raise self.Error.UnknownAlert()
        t = self._live(a.twin)
        if not self.config.twins.has_right(a.twin, who, OPERATE, t):
            f = None if t.facility is None else self.config.facilities.facility(t.facility)
            if f is None or f.operator != who:
                raise self.Error.NotAlertHandler()
        return a, t

    @call(14, weight=weights.W_SMALL, origin=SIGNED, args=(("alert", U64),), since=SINCE)
    def acknowledge_alert(self, origin: Origin, alert: int) -> None:
        """Acknowledge an open alert (owner, OPERATE delegate or the facility's operator):
        active-unacknowledged becomes acknowledged."""
        who = ensure_signed(origin)
        a, _ = self._ensure_handler(who, alert)
        if a.status != "Open":
            raise self.Error.AlertNotOpen()
        if self.Acknowledged.contains(alert):
            raise self.Error.AlreadyAcknowledged()
        self.Acknowledged.insert(alert, AlertAction(who, self._now()))
        self.deposit(self.Event.AlertAcknowledged(alert, a.twin, who))

    @call(
        15,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("alert", U64), ("assignee", Option(AccountId))),
        since=SINCE,
    )
    def assign_alert(self, origin: Origin, alert: int, assignee: bytes | None) -> None:
        """Assign an open alert to an account, or with None take the assignment back
        (owner, OPERATE delegate or the facility's operator)."""
        who = ensure_signed(origin)
        a, _ = self._ensure_handler(who, alert)
        if a.status != "Open":
            raise self.Error.AlertNotOpen()
        if assignee is None:
            if not self.Assignees.contains(alert):
                raise self.Error.NotAssigned()
            self.Assignees.remove(alert)
        else:
            self.Assignees.insert(alert, Assignment(assignee, who, self._now()))
        self.deposit(self.Event.AlertAssigned(alert, a.twin, assignee, who))

    @call(
        16,
        weight=weights.W_SMALL,
        origin=SIGNED,
        args=(("alert", U64), ("text", Str(MAX_COMMENT))),
        since=SINCE,
    )
    def comment_alert(self, origin: Origin, alert: int, text: str) -> None:
        """Comment on an alert, open or closed (owner, OPERATE delegate or the facility's
        operator): at most ``MAX_COMMENTS`` per alert, each at most 256 bytes."""
        who = ensure_signed(origin)
        a, _ = self._ensure_handler(who, alert)
        if not text.strip():
            raise self.Error.EmptyComment()
        n = self.CommentCount.get(alert)
        if n >= MAX_COMMENTS:
            raise self.Error.TooManyComments()
        self.Comments.insert(alert, n, Comment(who, self._now(), text))
        self.CommentCount.insert(alert, n + 1)
        self.deposit(self.Event.AlertCommented(alert, a.twin, n, who))

    # ------------------------------------------------------------------ API
    def alert_state(self, alert: int, a: Alert | None = None) -> str | None:
        """Where an alert stands in the lifecycle (``ALERT_STATES``), None if unknown."""
        a = a or self.Alerts.get(alert)
        if a is None:
            return None
        if a.status != "Open":
            return "Cleared"
        return "Acknowledged" if self.Acknowledged.contains(alert) else "ActiveUnacknowledged"

    def comments(self, alert: int) -> list[Comment]:
        return [c for _, c in sorted(self.Comments.iter_prefix(alert))]
