"""The demo's terminal view: one row per store, redrawn from the run's snapshots.

Rendering is a pure function of a snapshot, so the headless mode (tests, CI
logs) prints the same facts as one line per refresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.table import Table

from shelflink.sim.live import LiveSnapshot


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


Gateways = Mapping[str, GatewayView]


def _sim_time(sim_ms: int) -> str:
    return datetime.fromtimestamp(sim_ms / 1000, tz=UTC).strftime("%a %H:%M")


def _fridges(temps: tuple[float, ...]) -> str:
    # Above 8 °C a chilled product is out of its cold chain: show it in red.
    return " ".join(f"[red]{t:.1f}[/red]" if t > 8.0 else f"{t:.1f}" for t in temps) or "-"


def render(snapshot: LiveSnapshot, broker_url: str, gateways: Gateways | None = None) -> Table:
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
    return table


def _gateway_cells(gateway: GatewayView | None) -> list[str]:
    if gateway is None:
        return ["-", "-", "-", "-", "-"]
    buffer = f"{gateway.buffer_records} / {gateway.buffer_bytes / 1e6:.1f} MB"
    if gateway.high_water:
        buffer = f"[red]{buffer} HIGH[/red]"
    rejected = f"[yellow]{gateway.rejected}[/yellow]" if gateway.rejected else "0"
    return [str(gateway.accepted), rejected, buffer, str(gateway.gaps), str(gateway.in_cloud)]


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
    return (
        f"{line} gw_accepted={accepted} gw_rejected={rejected} gw_buffered={buffered} "
        f"in_cloud={in_cloud}"
    )
