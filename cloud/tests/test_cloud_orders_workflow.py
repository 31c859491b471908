"""The order workflow: every pair of states, legal moves audited and announced,
illegal ones refused with nothing written."""

from __future__ import annotations

import itertools

import pytest

from cloud.tests.test_cloud_api_harness import build_world, count, new_order
from shelflink.cloud.database import Connection
from shelflink.cloud.orders import get_order, transition_order
from shelflink.cloud.orders_models import Actor
from shelflink.cloud.orders_workflow import (
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    OrderState,
    auto_approves,
    check_transition,
    path_to,
)

S = OrderState
PAIRS = list(itertools.product(OrderState, OrderState))
DEALER = Actor(kind="dealer", key_id="k1", dealer_id="north")


def test_the_table_is_the_documented_workflow() -> None:
    assert {s: sorted(t) for s, t in TRANSITIONS.items()} == {
        S.SUGGESTED: [S.APPROVED, S.CANCELLED, S.REJECTED],
        S.APPROVED: [S.CANCELLED, S.PICKING],
        S.PICKING: [S.CANCELLED, S.SHIPPED],
        S.SHIPPED: [S.DELIVERED],
        S.DELIVERED: [],
        S.REJECTED: [],
        S.CANCELLED: [],
    }
    assert frozenset({S.DELIVERED, S.REJECTED, S.CANCELLED}) == TERMINAL


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_check_transition_follows_the_table(current: OrderState, target: OrderState) -> None:
    if target in TRANSITIONS[current]:
        check_transition(current, target)
    else:
        with pytest.raises(IllegalTransition, match=f"{current} cannot become {target}"):
            check_transition(current, target)


def test_auto_approval_is_strictly_below_the_threshold() -> None:
    assert auto_approves(999, 1000)
    assert not auto_approves(1000, 1000)
    assert not auto_approves(0, 0)


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
async def test_every_pair_of_states_in_the_database(
    db: Connection, current: OrderState, target: OrderState
) -> None:
    await build_world(db)
    order = await new_order(db)
    for step in path_to(current)[1:]:
        order = await transition_order(db, order.order_id, step, Actor.system())
    assert order.state == current
    audits = await count(db, "SELECT count(*) FROM order_transitions")
    events = await count(db, "SELECT count(*) FROM order_events")

    if target not in TRANSITIONS[current]:
        with pytest.raises(IllegalTransition):
            await transition_order(db, order.order_id, target, DEALER, note="try")
        unchanged = await get_order(db, order.order_id)
        assert unchanged == order
        assert await count(db, "SELECT count(*) FROM order_transitions") == audits
        assert await count(db, "SELECT count(*) FROM order_events") == events
        return

    moved = await transition_order(db, order.order_id, target, DEALER, note="because")
    assert (moved.state, moved.version) == (target, order.version + 1)
    cur = await db.execute(
        "SELECT from_state, to_state, actor_kind, actor_key_id, actor_dealer_id, note"
        " FROM order_transitions ORDER BY transition_id DESC LIMIT 1"
    )
    assert await cur.fetchone() == (current, target, "dealer", "k1", "north", "because")
    cur = await db.execute(
        "SELECT type, dealer_id, payload->>'state', payload->>'previous_state',"
        " (payload->>'version')::int, published_at FROM order_events"
        " ORDER BY event_id DESC LIMIT 1"
    )
    assert await cur.fetchone() == (
        "order.state_changed", "north", target, current, moved.version, None,
    )  # fmt: skip
    assert await count(db, "SELECT count(*) FROM order_events") == events + 1
