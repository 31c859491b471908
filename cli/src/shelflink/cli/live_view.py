"""The demo's terminal view: one row per store, redrawn from the run's snapshots, with
the edge's latest alerts, the orders moving through the dealers' workflow and the
cloud's channel-control alerts.

Rendering is a pure function of a snapshot, so the headless mode (tests, CI
logs) prints the same facts as one line per refresh, and one line per alert,
per order move and per channel-control alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table

from shelflink.sim.live import LiveSnapshot

if TYPE_CHECKING:
    from shelflink.cli.demo_channel import ChannelAlert
    from shelflink.cli.demo_dealer import OrderMove


@dataclass(frozen=True, slots=True)
class GatewayView:
    """What the view shows of one store's gateway."""

    accepted: int
    rejected: int  # duplicates included
    buffer_records: int
    buffer_bytes: int
    high_water: bool
    gaps: int  # sequence numbers reported missing
    in_cloud: int = 0  # records the cloud acknowledged as committed
    # What the gateway's edge concludes (docs/edge.md): standing alerts now.
    at_risk: int = 0  # lanes with a stockout_risk standing
    edge_out: int = 0  # lanes the edge sees empty
    cold_alarms: int = 0  # cold-chain alarms standing
    model: str | None = None  # the stock-out model's version, None when none is loaded


@dataclass(frozen=True, slots=True)
class NoticeView:
    """One line of the edge's recent conclusions, newest last."""

    store_id: str
    ts_ms: int
    kind: str
    raised: bool
    critical: bool
    text: str


@dataclass(frozen=True, slots=True)
class OrdersView:
    """The replenishment side of the demo: orders by state and their latest moves."""

    api_docs: str
    counts: Mapping[str, int]  # this run's orders by state
    deliveries: int  # delivered into the simulated stores
    units_delivered: int
    planning_runs: int
    moves: Sequence[OrderMove] = ()  # newest last


@dataclass(frozen=True, slots=True)
class ChannelView:
    """Channel control in the cloud: this run's alerts by kind and the latest ones."""

    counts: Mapping[str, int]  # a diverted sale counted once
    scans: int
    alerts: Sequence[ChannelAlert] = ()  # newest last


Gateways = Mapping[str, GatewayView]
# The workflow's order, for counts that read left to right.
STATE_ORDER = ("suggested", "approved", "picking", "shipped", "delivered", "rejected", "cancelled")
LINES_SHOWN = 2
REASON_CHARS = 120


def _sim_time(sim_ms: int) -> str:
    return datetime.fromtimestamp(sim_ms / 1000, tz=UTC).strftime("%a %H:%M")


def _fridges(temps: tuple[float, ...]) -> str:
    # Above 8 °C a chilled product is out of its cold chain: show it in red.
    return " ".join(f"[red]{t:.1f}[/red]" if t > 8.0 else f"{t:.1f}" for t in temps) or "-"


def render(
    snapshot: LiveSnapshot,
    broker_url: str,
    gateways: Gateways | None = None,
    notices: Sequence[NoticeView] = (),
    orders: OrdersView | None = None,
    channel: ChannelView | None = None,
) -> Group:
    title = (
        f"Shelflink demo · broker {broker_url} · {snapshot.speed:g}× · "
        f"simulated {_sim_time(snapshot.sim_ms)} UTC · "
        f"{snapshot.connected}/{snapshot.devices} devices connected"
    )
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("store", "profile", "msg/s", "published", "backlog", "dropped"):
        table.add_column(column, justify="right" if column not in ("store", "profile") else "left")
    table.add_column("lanes low / out", justify="right")
    table.add_column("sold", justify="right")
    table.add_column("lost sales", justify="right")
    table.add_column("fridges °C", justify="left")
    if gateways is not None:
        for column in ("gw accepted", "gw rejected", "gw buffer", "gw gaps", "in cloud"):
            table.add_column(column, justify="right")
        for column in ("edge risk / out", "cold alarms"):
            table.add_column(column, justify="right")
    for store in snapshot.stores:
        gateway = gateways.get(store.store_id) if gateways is not None else None
        low = f"{store.lanes_low}/{store.lanes}"
        out = f"[red]{store.lanes_out}[/red]" if store.lanes_out else "0"
        cells = [
            store.store_id,
            store.profile,
            f"{store.msgs_per_s:.0f}",
            str(store.published),
            str(store.backlog),
            str(store.dropped),
            f"{low} / {out}",
            str(store.units_sold),
            str(store.units_lost),
            _fridges(store.fridge_c),
        ]
        if gateways is not None:
            cells += _gateway_cells(gateway)
        table.add_row(*cells)
    parts = [table, _notices(notices)]
    if orders is not None:
        parts.append(_orders(orders))
    if channel is not None:
        parts.append(_channel(channel))
    return Group(*parts)


def _notices(notices: Sequence[NoticeView]) -> Table:
    table = Table(title="edge alerts (newest last)", title_justify="left", expand=False)
    for column in ("sim time", "store", "alert", "", "detail"):
        table.add_column(column)
    for notice in notices:
        state = "raised" if notice.raised else "cleared"
        colour = (
            "red" if notice.critical and notice.raised else "yellow" if notice.raised else "green"
        )
        table.add_row(
            _sim_time(notice.ts_ms), notice.store_id, notice.kind,
            f"[{colour}]{state}[/{colour}]", notice.text,
        )  # fmt: skip
    return table


def _gateway_cells(gateway: GatewayView | None) -> list[str]:
    if gateway is None:
        return ["-"] * 7
    buffer = f"{gateway.buffer_records} / {gateway.buffer_bytes / 1e6:.1f} MB"
    if gateway.high_water:
        buffer = f"[red]{buffer} HIGH[/red]"
    rejected = f"[yellow]{gateway.rejected}[/yellow]" if gateway.rejected else "0"
    model = "" if gateway.model is not None else " [yellow](no model)[/yellow]"
    out = f"[red]{gateway.edge_out}[/red]" if gateway.edge_out else "0"
    risk = f"[yellow]{gateway.at_risk}[/yellow]" if gateway.at_risk else "0"
    cold = f"[red]{gateway.cold_alarms}[/red]" if gateway.cold_alarms else "0"
    return [
        str(gateway.accepted), rejected, buffer, str(gateway.gaps), str(gateway.in_cloud),
        f"{risk} / {out}{model}", cold,
    ]  # fmt: skip


def summary_line(snapshot: LiveSnapshot, gateways: Gateways | None = None) -> str:
    """One line for headless runs: the same facts as the table, totalled."""
    rate = sum(s.msgs_per_s for s in snapshot.stores)
    low = sum(s.lanes_low for s in snapshot.stores)
    out = sum(s.lanes_out for s in snapshot.stores)
    temps = [t for s in snapshot.stores for t in s.fridge_c]
    warmest = f"{max(temps):.1f}" if temps else "-"
    line = (
        f"t={snapshot.elapsed_s:5.1f}s sim={_sim_time(snapshot.sim_ms)} "
        f"devices={snapshot.connected}/{snapshot.devices} msg/s={rate:.0f} "
        f"published={snapshot.published} lanes_low={low} lanes_out={out} "
        f"warmest_fridge_c={warmest}"
    )
    if gateways is None:
        return line
    accepted = sum(g.accepted for g in gateways.values())
    rejected = sum(g.rejected for g in gateways.values())
    buffered = sum(g.buffer_records for g in gateways.values())
    in_cloud = sum(g.in_cloud for g in gateways.values())
    at_risk = sum(g.at_risk for g in gateways.values())
    edge_out = sum(g.edge_out for g in gateways.values())
    cold = sum(g.cold_alarms for g in gateways.values())
    return (
        f"{line} gw_accepted={accepted} gw_rejected={rejected} gw_buffered={buffered} "
        f"in_cloud={in_cloud} edge_at_risk={at_risk} edge_out={edge_out} cold_alarms={cold}"
    )


def notice_line(notice: NoticeView) -> str:
    """A headless run prints each edge alert as it happens, one line each."""
    state = "raised" if notice.raised else "cleared"
    return f"edge {notice.store_id} {_sim_time(notice.ts_ms)} {notice.kind} {state}: {notice.text}"


def order_counts(counts: Mapping[str, int]) -> str:
    """``suggested 2 · approved 1 · …`` in workflow order; states without orders left out."""
    ordered = sorted(counts, key=lambda s: STATE_ORDER.index(s) if s in STATE_ORDER else 99)
    return " · ".join(f"{state} {counts[state]}" for state in ordered) or "none yet"


def _lines(move: OrderMove) -> str:
    units = sum(quantity for _, quantity in move.lines)
    shown = ", ".join(f"{gtin}×{quantity}" for gtin, quantity in move.lines[:LINES_SHOWN])
    more = f", +{len(move.lines) - LINES_SHOWN} more" if len(move.lines) > LINES_SHOWN else ""
    return f"{len(move.lines)} lines, {units} units ({shown}{more})"


def _change(move: OrderMove) -> str:
    if move.previous is None:
        auto = " (auto-approved)" if move.note.startswith("auto-approved") else ""
        return f"new, {move.state}{auto}"
    return f"{move.previous} → {move.state}"


def _orders(view: OrdersView) -> Table:
    title = (
        f"orders: {order_counts(view.counts)} · delivered into stores {view.deliveries} "
        f"({view.units_delivered} units) · planning runs {view.planning_runs} · "
        f"dealer API {view.api_docs}"
    )
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("sim time", "order", "store", "dealer", "move", "by", "lines", "reason"):
        table.add_column(column)
    for move in view.moves:
        reason = move.reason
        if len(reason) > REASON_CHARS:
            reason = reason[: REASON_CHARS - 1] + "…"
        colour = "red" if move.expedite else "default"
        table.add_row(
            _sim_time(move.sim_ms), str(move.order_id), move.store_id, move.dealer_id,
            _change(move), move.actor or "-", _lines(move), f"[{colour}]{reason}[/{colour}]",
        )  # fmt: skip
    return table


def order_line(move: OrderMove) -> str:
    """A headless run prints each order move as it happens, one line each."""
    return (
        f"order {move.order_id} {move.store_id} {move.dealer_id} {_sim_time(move.sim_ms)} "
        f"{_change(move)} by {move.actor or '-'}: {_lines(move)}; reason: {move.reason}"
    )


def _money(minor: int | None, currency: str) -> str:
    return "-" if minor is None else f"{minor / 100:.2f} {currency}"


def _finding(alert: ChannelAlert) -> str:
    sold_by = alert.sold_by or "no dealer"
    if alert.kind == "diversion":
        return f"shipped to {alert.shipped_to}, sold by {sold_by}"
    price = _money(alert.unit_price_minor, alert.currency)
    minimum = _money(alert.min_resale_minor, alert.currency)
    return f"sold by {sold_by} at {price}, minimum {minimum}"


def _channel(view: ChannelView) -> Table:
    counts = " · ".join(f"{kind} {n}" for kind, n in view.counts.items())
    title = f"channel control: {counts} · scans {view.scans} · GET /api/v1/alerts (newest last)"
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("sim time", "store", "alert", "gtin", "serial", "finding"):
        table.add_column(column)
    for alert in view.alerts:
        table.add_row(
            _sim_time(alert.sim_ms), alert.store_id, f"[yellow]{alert.kind}[/yellow]",
            alert.gtin, alert.serial or "-", _finding(alert),
        )  # fmt: skip
    return table


def alert_line(alert: ChannelAlert) -> str:
    """A headless run prints each channel-control alert as the scan finds it, one line each."""
    return (
        f"alert {alert.kind} {alert.store_id} {_sim_time(alert.sim_ms)} {alert.gtin} "
        f"serial {alert.serial or '-'}: {_finding(alert)}"
    )
