"""Live lists whose rows stay the same DOM nodes while they are shown.

Dash 4 re-mounts every child of a component whose `children` change (its renderer keys them by a count of fresh
renders), so a list sent again as a whole replaces every row, and a click, hover or text selection on any of them is
lost. A live list is therefore a fixed set of slots, never re-sent: each row keeps its slot for as long as it is
shown, a slot's content is sent only when what the row shows changed, and the CSS `order` puts the slots in the
list's order. New rows take free slots; a row that drops off frees its slot.
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


class SlotList:
    """A list of at most `capacity` rows in slots with pattern ids {"type": kind, "index": slot number}."""

    def __init__(self, kind: str, capacity: int, empty_text: str):
        self.kind, self.capacity, self.empty_text = kind, capacity, empty_text

    def layout(self, **container: Any) -> html.Div:
        return html.Div(
            [
                html.P(self.empty_text, id=f"{self.kind}-empty", className="muted"),
                *(html.Div(id={"type": self.kind, "index": i}, n_clicks=0, hidden=True) for i in range(self.capacity)),
            ],
            **container,
        )

    def outputs(self) -> list[Output]:
        slot = {"type": self.kind, "index": ALL}
        return [
            Output(slot, "children"),
            Output(slot, "className"),
            Output(slot, "style"),
            Output(slot, "hidden"),
            Output(f"{self.kind}-empty", "hidden"),
        ]

    def update(self, shown: dict[str, list] | None, rows: list[Row]) -> tuple[list[Any], dict[str, list]]:
        """The values for `outputs()` that turn what the browser shows (`shown`, as the last update left it) into
        `rows`, and what it shows then. Only the content of slots whose row changed is sent."""
        rows = list({row.key: row for row in reversed(rows[: self.capacity])}.values())[::-1]  # a key once
        keys: list[str | None] = (
            list(shown["keys"]) if shown and len(shown["keys"]) == self.capacity else [None] * self.capacity
        )
        prints: list[str | None] = (
            list(shown["prints"]) if shown and len(shown["prints"]) == self.capacity else [None] * self.capacity
        )
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
        children, classes, styles, hidden = [], [], [], []
        for i, key in enumerate(keys):
            listed = by_key.get(key) if key is not None else None
            now = fingerprint((key, listed.facts)) if listed else None
            children.append(no_update if now == prints[i] else listed.render() if listed else [])
            prints[i] = now
            # These three are small and always sent: they are what a user sees of the slot, whatever was before.
            classes.append(listed.class_name if listed else "")
            styles.append({"order": rank[listed.key]} if listed else {})
            hidden.append(listed is None)
        return [children, classes, styles, hidden, bool(rows)], {"keys": keys, "prints": prints}

    @staticmethod
    def key_at(shown: dict[str, list] | None, slot: int) -> str | None:
        """The key of the row in a slot, as the browser shows it."""
        keys = (shown or {}).get("keys") or []
        return keys[slot] if 0 <= slot < len(keys) else None
