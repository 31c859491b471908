"""The order workflow as data: the states, the one transition table, auto-approval.

Pure: no I/O. ``orders.py`` checks every change against :data:`TRANSITIONS`
inside the transaction that makes it.
"""

from __future__ import annotations

from enum import StrEnum


class OrderState(StrEnum):
    """Where an order is in its life."""

    SUGGESTED = "suggested"
    APPROVED = "approved"
    PICKING = "picking"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


S = OrderState

# The only place that says which move is allowed. Rejection answers a
# suggestion; cancelling withdraws an order before it leaves the warehouse
# (a suggestion too, when the planner supersedes it). Once shipped, goods are
# on the road: only delivery follows, a return would be a new flow.
TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    S.SUGGESTED: frozenset({S.APPROVED, S.REJECTED, S.CANCELLED}),
    S.APPROVED: frozenset({S.PICKING, S.CANCELLED}),
    S.PICKING: frozenset({S.SHIPPED, S.CANCELLED}),
    S.SHIPPED: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset(),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
}

TERMINAL: frozenset[OrderState] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)


class IllegalTransition(ValueError):
    """The workflow does not allow this move from the order's current state."""

    def __init__(self, current: OrderState, target: OrderState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none, it is final"
        super().__init__(f"an order that is {current} cannot become {target} (allowed: {allowed})")
        self.current = current
        self.target = target


def check_transition(current: OrderState, target: OrderState) -> None:
    """Raise :class:`IllegalTransition` unless ``current`` → ``target`` is in the table."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)


def path_to(target: OrderState) -> list[OrderState]:
    """The states a new (suggested) order passes through to reach ``target``, in order."""
    path = [S.SUGGESTED]
    while path[-1] != target:
        forward = TRANSITIONS[path[-1]] - {S.REJECTED, S.CANCELLED}
        direct = target in TRANSITIONS[path[-1]]
        if direct:
            path.append(target)
        elif forward:
            (step,) = forward
            path.append(step)
        else:
            raise ValueError(f"{target} is not reachable")
    return path


def auto_approves(value_minor: int, threshold_minor: int) -> bool:
    """Whether an order worth ``value_minor`` is approved without a person.

    Strictly below the dealer's threshold, so a threshold of 0 approves nothing.
    """
    return value_minor < threshold_minor
