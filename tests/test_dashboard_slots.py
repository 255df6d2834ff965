"""The live page's slot lists (dashboard/slots.py) as a plain function: which slot each row takes, and what is sent.

The expected slots are worked out by hand from the rule the docstring states: a row keeps its slot while it is
listed, new rows take slots empty before those just emptied, content goes out only when a row's facts change.
"""

from __future__ import annotations

from dash import no_update

from dashboard.slots import Row, SlotList, stable_orders


def rows(*keys: str, facts: dict[str, object] | None = None) -> list[Row]:
    return [
        Row(key, (facts or {}).get(key, key), lambda key=key: [f"content of {key}"], f"class-{key}") for key in keys
    ]


def sent(values: list, prop: int = 0) -> dict[int, object]:
    """slot -> the value sent for one of the slots' props (0 content, 1 style); slots left alone are missing. Content
    as (the row's class, its children)."""
    return {
        i: (value[0].className, value[0].children) if prop == 0 and value else value
        for i, value in enumerate(values[prop])
        if value is not no_update
    }


HIDDEN = {"display": "none"}


def test_rows_keep_their_slots_and_only_new_content_is_sent() -> None:
    slots = SlotList("x", 4, "nothing yet")
    values, shown = slots.update(None, rows("a", "b"))
    assert sent(values) == {0: ("class-a", ["content of a"]), 1: ("class-b", ["content of b"])}  # empty as laid out
    assert sent(values, 1) == {0: {"order": 0}, 1: {"order": 1}} and values[2] is True
    # "c" arrives on top: it takes an empty slot, a and b stay where they are and are not sent again; only c's slot
    # changes style, to go above a and b, which keep their order values.
    values, shown = slots.update(shown, rows("c", "a", "b"))
    assert sent(values) == {2: ("class-c", ["content of c"])}
    assert sent(values, 1) == {2: {"order": -1}}
    # "b" drops off while "d" arrives: d takes the slot that was empty all along, b's slot is cleared and hidden.
    values, shown = slots.update(shown, rows("d", "c", "a"))
    assert sent(values) == {1: [], 3: ("class-d", ["content of d"])}
    assert sent(values, 1) == {1: HIDDEN, 3: {"order": -2}} and shown["keys"] == ["a", None, "c", "d"]
    # Nothing changed: nothing is sent; a changed row is sent again in its own slot.
    values, shown = slots.update(shown, rows("d", "c", "a"))
    assert sent(values) == {} and sent(values, 1) == {}
    values, shown = slots.update(shown, rows("d", "c", "a", facts={"c": "c, now with more messages"}))
    assert sent(values) == {2: ("class-c", ["content of c"])}


def test_rows_keep_their_order_values_while_the_rows_around_them_keep_theirs() -> None:
    def orders(before: dict[str, int], *keys: str) -> list[int]:
        found = stable_orders(before, rows(*keys))
        assert [found[a] < found[b] for a, b in zip(keys, keys[1:], strict=False)] == [True] * (len(keys) - 1)
        return [found[key] for key in keys]

    assert orders({}, "a", "b") == [0, 1]
    assert orders({"a": 0, "b": 1}, "y", "z", "a", "b", "c") == [-2, -1, 0, 1, 2]  # new rows above and below
    assert orders({"a": 0, "b": 5}, "a", "x", "b") == [0, 1, 5]  # room between
    assert orders({"a": 0, "b": 1}, "a", "x", "b") == [0, 1, 2]  # no room: all numbered afresh
    assert orders({"a": 0, "b": 1}, "b", "a") == [0, 1]  # swapped: all numbered afresh


def test_a_full_list_reuses_the_slots_of_rows_that_dropped_off_and_stays_within_capacity() -> None:
    slots = SlotList("x", 3, "nothing yet")
    _, shown = slots.update(None, rows("a", "b", "c"))
    values, shown = slots.update(shown, rows("e", "d", "a", "b", "c"))  # more rows than slots: the first three
    assert shown["keys"] == ["a", "e", "d"]
    assert sent(values) == {1: ("class-e", ["content of e"]), 2: ("class-d", ["content of d"])}
    values, shown = slots.update(shown, [])
    assert (
        shown["keys"] == [None, None, None]
        and sent(values, 1) == dict.fromkeys(range(3), HIDDEN)
        and values[2] is False
    )


def test_a_key_listed_twice_is_one_row_and_slots_map_back_to_keys() -> None:
    slots = SlotList("x", 3, "nothing yet")
    _, shown = slots.update({"keys": ["stale", None], "prints": [None, None]}, rows("a", "a", "b"))
    assert shown["keys"] == ["a", "b", None]  # a browser state of another size is started afresh
    assert [SlotList.key_at(shown, i) for i in (0, 1, 2, 3, -1)] == ["a", "b", None, None, None]
