"""Live lists whose rows stay the same DOM nodes while they are shown.

Dash 4 re-mounts every child of a component whose `children` change (its renderer keys them by a count of fresh
renders), so a list sent again as a whole replaces every row, and a click, hover or text selection on any of them is
lost. A live list is therefore a fixed set of slots, never re-sent: each row keeps its slot for as long as it is
shown, a slot's content is sent only when what the row shows changed, and the CSS `order` puts the slots in the
list's order. New rows take free slots; a row that drops off frees its slot.

The Dash renderer's work on each refresh grows with the square of the callback's outputs (it gathers them into an
object copied once per output, and finds each pattern id's component by a linear search among the ids with the
same keys), and each prop it sets notifies every component. With four props on 100 slots sharing one id shape, all
sent each second (a new chat line moved every other line down a place), the browser's main thread stayed busy
enough that clicks and keys reached the page seconds late. So each list has an id key of its own, a slot has two
props, its content (in a block of the row's class) and its style (its `order`, or hidden), each sent only when
it changed, and a row keeps its `order` value while the rows around it keep theirs: a new row on top takes one
below the smallest (it may be negative).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dash import ALL, Output, html, no_update


@dataclass(frozen=True)
class Row:
    key: str  # what the row is (an event id, a message id): it keeps its slot as long as the key is listed
    facts: Any  # what the row shows: its content is sent again only when these change
    render: Callable[[], list[Any]]  # the row's content
    class_name: str


def fingerprint(facts: Any) -> str:
    """A short digest of what a view shows, to tell whether it changed since the browser last got it."""
    return hashlib.sha1(repr(facts).encode("utf-8")).hexdigest()[:16]


HIDDEN = {"display": "none"}  # an empty slot's style


class SlotList:
    """A list of at most `capacity` rows in slots with pattern ids {kind: slot number}."""

    def __init__(self, kind: str, capacity: int, empty_text: str):
        self.kind, self.capacity, self.empty_text = kind, capacity, empty_text

    def layout(self, **container: Any) -> html.Div:
        return html.Div(
            [
                html.P(self.empty_text, id=f"{self.kind}-empty", className="muted"),
                *(html.Div(id={self.kind: i}, n_clicks=0, style=HIDDEN) for i in range(self.capacity)),
            ],
            **container,
        )

    @property
    def every_slot(self) -> dict[str, Any]:
        """The pattern id that matches all of the list's slots."""
        return {self.kind: ALL}

    def outputs(self) -> list[Output]:
        return [
            Output(self.every_slot, "children"),
            Output(self.every_slot, "style"),
            Output(f"{self.kind}-empty", "hidden"),
        ]

    def update(self, shown: dict[str, list] | None, rows: list[Row]) -> tuple[list[Any], dict[str, list]]:
        """The values for `outputs()` that turn what the browser shows (`shown`, as the last update left it) into
        `rows`, and what it shows then. Only what changed in a slot is sent."""
        rows = list({row.key: row for row in reversed(rows[: self.capacity])}.values())[::-1]  # a key once

        def remembered(name: str) -> list[Any]:  # a browser state of another size is started afresh
            kept = (shown or {}).get(name) or []
            return list(kept) if len(kept) == self.capacity else [None] * self.capacity

        keys, prints, styles = remembered("keys"), remembered("prints"), remembered("styles")
        shown_orders = {key: style["order"] for key, style in zip(keys, styles, strict=True) if key and style}
        rank = {row.key: i for i, row in enumerate(rows)}
        # New rows take the slots that were empty before those that just emptied: a row that dropped off does not
        # turn into another under a user's cursor while there is room elsewhere.
        free = iter(
            [i for i, key in enumerate(keys) if key is None]
            + [i for i, key in enumerate(keys) if key is not None and key not in rank]
        )
        keys = [key if key in rank else None for key in keys]
        placed = set(keys)
        for row in rows:
            if row.key not in placed:
                keys[next(free)] = row.key
        by_key = {row.key: row for row in rows}
        order = stable_orders(shown_orders, rows)
        children_out: list[Any] = []
        styles_out: list[Any] = []
        for i, key in enumerate(keys):
            listed = by_key.get(key) if key is not None else None
            now = fingerprint((key, listed.facts, listed.class_name)) if listed else None
            if now == prints[i]:
                children_out.append(no_update)
            else:
                children_out.append([html.Div(listed.render(), className=listed.class_name)] if listed else [])
            prints[i] = now
            style = {"order": order[listed.key]} if listed else None
            styles_out.append(no_update if style == styles[i] else style or HIDDEN)
            styles[i] = style
        return [children_out, styles_out, bool(rows)], {"keys": keys, "prints": prints, "styles": styles}

    @staticmethod
    def key_at(shown: dict[str, list] | None, slot: int) -> str | None:
        """The key of the row in a slot, as the browser shows it."""
        keys = (shown or {}).get("keys") or []
        return keys[slot] if 0 <= slot < len(keys) else None


def stable_orders(before: dict[str, int], rows: list[Row]) -> dict[str, int]:
    """CSS `order` values that put `rows` in their order, keeping the value in `before` of each row shown already
    when those still come in the same order and the new rows fit between them; otherwise 0, 1, 2, ..."""
    kept = [before[row.key] for row in rows if row.key in before]
    if all(a < b for a, b in zip(kept, kept[1:], strict=False)):
        orders: dict[str, int] = {}
        new: list[str] = []  # new rows since the last kept one, whose value is `last`
        last: int | None = None
        for row in [*rows, None]:  # None: the end of the list
            if row is not None and row.key not in before:
                new.append(row.key)
                continue
            after = before[row.key] if row is not None else None
            if last is not None and after is not None and after - last <= len(new):
                break  # no room between two kept rows
            start = last + 1 if last is not None else (after - len(new) if after is not None else 0)
            orders.update(zip(new, range(start, start + len(new)), strict=True))
            new = []
            if row is not None:
                orders[row.key] = last = before[row.key]
        else:
            return orders
    return {row.key: i for i, row in enumerate(rows)}
