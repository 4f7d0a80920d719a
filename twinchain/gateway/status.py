"""Live status of a running gateway: a JSON file (for ``gateway status`` and the devnet), a
rich table on the terminal, and Prometheus metrics.

Prometheus names (``twinchain_gateway_*``): ``readings_received_total{source}``,
``readings_rejected_total{reason}``, ``readings_spooled_total``, ``readings_finalized_total``,
``batches_signed_total``, ``batches_finalized_total``, ``batches_lost_total``,
``extrinsics_submitted_total``, ``submit_errors_total{reason}``, ``spool_readings{stage}``
(pending, batched, in_flight), ``extrinsics_in_flight``, ``backpressure``,
``node_connected``, ``finalized_block``, ``best_block``, ``finality_lag_blocks``,
``submit_attempts_total`` (every submission, accepted or not), the archive's
``batches_archived_total``, ``readings_archived_total``, ``archive_refused_total{reason}``,
``batches_resigned_total``, ``archive_lag_seconds`` (how long the oldest final batch has
waited for the archive), ``archive_reachable``, ``spool_readings{stage="final"}`` (final,
waiting for the archive), and the histogram ``reading_to_finalized_seconds``. Values are
read from the gateway at scrape time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from rich.table import Table

from twinchain.gateway.state import LATENCY_BUCKET_MS

if TYPE_CHECKING:
    from twinchain.gateway.core import Gateway

P = "twinchain_gateway_"
_HIST_EDGES_MS = (100, 250, 500, 1000, 1500, 2000, 3000, 5000, 10000, 30000)


class GatewayCollector(Collector):
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def collect(self) -> Iterable[Metric]:
        gw, state = self.gw, self.gw.state
        st = state.stats
        c = CounterMetricFamily(P + "readings_received", "Readings from sources", labels=["source"])
        for k, v in list(st.received.items()):
            c.add_metric([k], v)
        yield c
        c = CounterMetricFamily(P + "readings_rejected", "Refused readings", labels=["reason"])
        for k, v in list(st.rejected.items()):
            c.add_metric([k], v)
        yield c
        c = CounterMetricFamily(P + "submit_errors", "Submissions refused", labels=["reason"])
        for k, v in list(st.submit_errors.items()):
            c.add_metric([k], v)
        yield c
        c = CounterMetricFamily(
            P + "archive_refused", "Batches the facility archive refused", labels=["reason"]
        )
        for k, v in list(st.archive_refused.items()):
            c.add_metric([k], v)
        yield c
        for name, doc, v in (
            ("readings_spooled", "Readings committed to the spool", st.spooled),
            ("readings_finalized", "Readings in finalized blocks", st.readings_final),
            ("batches_signed", "Device batches signed", st.batches_signed),
            ("batches_finalized", "Batches confirmed in finalized blocks", st.batches_final),
            ("batches_lost", "Batches that can no longer be applied", st.batches_lost),
            ("extrinsics_submitted", "Extrinsics accepted by the node's pool", st.xts_submitted),
            ("submit_attempts", "Extrinsic submissions, accepted or not", st.submit_attempts),
            ("batches_archived", "Batches the facility archive holds", st.batches_archived),
            ("readings_archived", "Readings the facility archive holds", st.readings_archived),
            ("batches_resigned", "Batches signed again for a changed policy", st.batches_resigned),
        ):
            yield CounterMetricFamily(P + name, doc, value=v)
        g = GaugeMetricFamily(P + "spool_readings", "Readings in the spool", labels=["stage"])
        g.add_metric(["pending"], sum(d.pending_n for d in list(state.devices.values())))
        g.add_metric(["batched"], state.unpacked_n)
        g.add_metric(["in_flight"], sum(x.row.readings for x in list(state.inflight.values())))
        g.add_metric(["final"], state.archive_n)
        yield g
        for name, doc, v in (
            ("extrinsics_in_flight", "Extrinsics submitted, not settled", len(state.inflight)),
            ("backpressure", "1 while the sources are paused", int(gw.intake.backpressure)),
            ("node_connected", "1 while connected to the node", int(state.connected)),
            ("finalized_block", "Latest finalized block seen", gw.finality.finalized_number),
            ("best_block", "Latest best block seen", gw.finality.best_number),
            ("finality_lag_blocks", "Best minus finalized block number", gw.finality.lag()),
            (
                "archive_lag_seconds",
                "Age of the oldest final batch not archived",
                state.archive_lag_s(),
            ),
            ("archive_reachable", "0 while archive_deliver fails", int(not state.archive_error)),
        ):
            yield GaugeMetricFamily(P + name, doc, value=v)
        lat = list(st.latency)
        buckets = []
        acc = 0
        edges = iter(_HIST_EDGES_MS)
        edge = next(edges)
        total_ms = 0
        for i, n in enumerate(lat):
            upper = (i + 1) * LATENCY_BUCKET_MS
            while upper > edge:
                buckets.append((str(edge / 1000), acc))
                edge = next(edges, 10**12)
            acc += n
            total_ms += n * (upper - LATENCY_BUCKET_MS // 2)
        while edge < 10**12:
            buckets.append((str(edge / 1000), acc))
            edge = next(edges, 10**12)
        buckets.append(("+Inf", acc))
        yield HistogramMetricFamily(
            P + "reading_to_finalized_seconds",
            "From a reading's arrival to its batch in a finalized block",
            buckets=buckets,
            sum_value=total_ms / 1000,
        )


def serve_prometheus(gw: Gateway, host: str, port: int) -> None:
    registry = CollectorRegistry()
    registry.register(GatewayCollector(gw))
    start_http_server(port, addr=host, registry=registry)


def write_status(path: Path, status: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def _n(v: float | int | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}{unit}"
    return f"{v:,}{unit}"


def _source_line(src: dict[str, Any]) -> str:
    """One source's report: where it is, what it refused, its error."""
    parts = []
    if src.get("type") == "historian":
        where = f"{src.get('file') or '-'} row {_n(src.get('row', 0))}"
        done = " (done)" if src.get("done") else ""
        parts.append(f"{where}, {_n(src.get('rows', 0))} rows read{done}")
    elif src.get("type") == "modbus":
        state = "[green]connected[/]" if src.get("connected") else "[red]not connected[/]"
        parts.append(f"{src.get('endpoint', '')} {state}, {_n(src.get('polls', 0))} polls")
    refused = src.get("refused") or {}
    if refused:
        parts.append("refused " + ", ".join(f"{k} {v}" for k, v in sorted(refused.items())))
    if src.get("error"):
        parts.append(f"[red]{str(src['error'])[:80]}[/]")
    return "; ".join(parts)


def table(s: dict[str, Any]) -> Table:
    t = Table(title=f"twinchain gateway {s['name']}", show_header=False, expand=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    if s.get("stopped"):
        node = "[yellow]the gateway is stopped[/] (last status)"
    elif s["connected"]:
        node = "[green]connected[/]"
    else:
        node = f"[red]unreachable[/] {s['node_error'][:60]}"
    t.add_row("node", f"{s['node']}  {node}")
    t.add_row("readings in", f"{_n(s['rate_in'])}/s  ({_n(s['spooled'])} spooled this run)")
    t.add_row(
        "finalized",
        f"{_n(s['rate_final'])}/s  ({_n(s['readings_final'])} readings, "
        f"{_n(s['batches_final'])} batches)",
    )
    bp = "  [yellow]back-pressure[/]" if s["backpressure"] else ""
    t.add_row(
        "spool",
        f"{_n(s['spool_pending'])} waiting, {_n(s['spool_batched'])} batched, "
        f"{_n(s['spool_in_flight'])} in {s['xts_in_flight']} extrinsics{bp}",
    )
    if "finality" in s:  # absent in a status file of an older gateway
        style = "red" if s.get("finality_stalled_s") is not None else "green"
        t.add_row("finality", f"[{style}]{s['finality']}[/]  (finalized #{s['finalized_block']})")
    if "archive_pending" in s:  # absent in a status file of an older gateway
        refused = sum(s["archive_refused"].values())
        kept = s["archive_refused_kept"]
        style = "red" if s["archive_error"] or kept else "green"
        line = (
            f"[{style}]{_n(s['archive_pending'])} final readings wait "
            f"(oldest {s['archive_lag_s']} s), {_n(s['readings_archived'])} archived this run[/]"
        )
        if kept or refused:
            line += f"  [red]{kept} refused batches kept[/]"
        if s["archive_error"]:
            line += f"  [red]{s['archive_error'][:60]}[/]"
        t.add_row("archive", line)
    lf = s.get("last_final_batch")
    t.add_row(
        "last final batch",
        "-" if not lf else f"seq {lf['seq']} of {lf['device'][:12]}… in #{lf['block']}",
    )
    t.add_row(
        "reading to final p50 / p99",
        f"{_n(s['latency_p50_s'], ' s')} / {_n(s['latency_p99_s'], ' s')}  (submitted to final "
        f"{_n(s.get('submit_to_final_p50_s'), ' s')} / {_n(s.get('submit_to_final_p99_s'), ' s')})",
    )
    rej = ", ".join(f"{k} {v}" for k, v in sorted(s["rejected"].items())) or "none"
    t.add_row("rejected", rej)
    for name, src in s.get("sources", {}).items():  # absent in an older gateway's status
        t.add_row(name, _source_line(src))
    if s["submit_errors"]:
        t.add_row("submit errors", ", ".join(f"{k} {v}" for k, v in s["submit_errors"].items()))
    if s["batches_lost"]:
        t.add_row("lost batches", f"[red]{s['batches_lost']}[/]")
    bad = [f"{n}: {d['problem']}" for n, d in s["devices"].items() if not d["usable"]]
    if bad:
        t.add_row("devices refused", "; ".join(bad))
    return t
