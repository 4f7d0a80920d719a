"""What the explorer's tabs and screens share: the formatting of values into Rich renderables,
the status bar, the :class:`Tab` base class and the :class:`ExplorerHost` seam through which a
tab or screen reaches the application."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

from rich import box
from rich.table import Table
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from twinchain.primitives.keys import parse_account

if TYPE_CHECKING:
    from twinchain.explorer.data import ChainData

# --------------------------------------------------------------------------- formatting


def fmt(value: Any, width: int = 60) -> str:
    """A compact one-line rendering of a decoded value."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def scaled(value: int, scale: int) -> str:
    """A fixed-point integer with ``scale`` decimals, exactly (no float)."""
    if scale <= 0:
        return str(value)
    sign = "-" if value < 0 else ""
    q, r = divmod(abs(value), 10**scale)
    return f"{sign}{q}.{r:0{scale}d}"


def check(flag: Any) -> str:
    """✓ or ✗ for a yes/no field."""
    return "✓" if flag else "✗"


def account_label(data: ChainData, value: Any) -> str:
    """An account given as an address or hex, by its known name where there is one."""
    if isinstance(value, str):
        try:
            return data.label(parse_account(value))
        except ValueError:
            return value
    return "-"


def clock(ms: Any, date: bool = False) -> str:
    """A chain timestamp (ms since the epoch) as UTC time of day, or date."""
    if type(ms) is not int:
        return "-"
    if ms >= 2**42:  # "forever" sentinels read better as such than as a year 30000 date
        return "never"
    return time.strftime("%Y-%m-%d" if date else "%H:%M:%S", time.gmtime(ms // 1000))


def grid(label_width: int = 12, fold: bool = False) -> Table:
    """Label/value rows; the labels keep their width when values are long."""
    out = Table.grid(padding=(0, 1), expand=True)
    out.add_column(style="bold", width=label_width, no_wrap=True)
    if fold:
        out.add_column(overflow="fold", ratio=1)
    else:
        out.add_column(overflow="ellipsis", no_wrap=True, ratio=1)
    return out


def titled_table(title: str, *columns: str) -> Table:
    """A titled table; ``columns`` are added one line each, cut with an ellipsis."""
    out = Table(
        title=f"[bold]{title}[/]",
        title_justify="left",
        expand=True,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
    )
    for c in columns:
        out.add_column(c, no_wrap=True, overflow="ellipsis")
    return out


def generic_table(title: str, items: list[dict[str, Any]], keys: int = 6) -> Table:
    """A table of records whose shape this package does not know in advance."""
    cols: list[str] = []
    for item in items:
        for k in item:
            if k not in cols and len(cols) < keys:
                cols.append(k)
    out = titled_table(title, *cols)
    for item in items:
        out.add_row(*(fmt(item.get(c), 24) for c in cols))
    if not items:
        out.add_row(*(["none"] + [""] * (len(cols) - 1) if cols else ["none"]))
    return out


# --------------------------------------------------------------------------- widgets and seams


class RecordTable(DataTable[Any]):
    """A table of records with a row cursor; its columns are keyed by their labels."""

    def __init__(self, columns: Sequence[str], *, id: str) -> None:
        super().__init__(id=id, cursor_type="row")
        self.labels = tuple(columns)

    def on_mount(self) -> None:
        for c in self.labels:
            self.add_column(c, key=c)


class StatusBar(Static):
    """Chain, node, heights, time since the last block against the slot, peers, ready txs;
    and the connection state on its second line."""

    DEFAULT_CSS = """
    StatusBar { height: 2; background: $boost; padding: 0 1; }
    StatusBar.disconnected { background: $error 40%; }
    """


class ExplorerHost(Protocol):
    """What tabs and screens use of the application (``ExplorerApp`` implements it)."""

    data: ChainData
    finalized_number: int

    def render_status(self, bar: StatusBar | None = None) -> None:
        """Redraw the status bars of the current screen (or just ``bar``)."""
        ...

    def refresh_view_bg(self) -> Any:
        """Reload the visible tab in the background (one reload at a time)."""
        ...


class Tab(Vertical):
    """One view of the explorer, shown in the application's ``ContentSwitcher``.

    A subclass names itself (``NAME``: its id and the ``view`` action's argument), its key and
    footer label, and the widget focused when it is shown; it composes its widgets, and
    renders :attr:`host`'s data in :meth:`reload`. ``text`` sums up in one line what it
    rendered last.
    """

    NAME: ClassVar[str]
    KEY: ClassVar[str]
    LABEL: ClassVar[str]
    FOCUS: ClassVar[str]

    def __init__(self) -> None:
        super().__init__(id=self.NAME)
        self.text = ""

    @property
    def host(self) -> ExplorerHost:
        return cast("ExplorerHost", self.app)

    @property
    def data(self) -> ChainData:
        return self.host.data

    async def after_connect(self, chain_changed: bool) -> None:
        """After each (re)connection; ``chain_changed`` when another chain answers now."""
        return None

    async def reload(self) -> None:
        """Fetch and render: when shown, on ``r``, and on each new block while shown."""
        return None


__all__ = [
    "ExplorerHost",
    "RecordTable",
    "StatusBar",
    "Tab",
    "account_label",
    "check",
    "clock",
    "fmt",
    "generic_table",
    "grid",
    "scaled",
    "titled_table",
]
