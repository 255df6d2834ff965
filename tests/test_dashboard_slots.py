"""The live page's slot lists (dashboard/slots.py) as a plain function: which slot each row takes, and what is sent.

The expected slots are worked out by hand from the rule the docstring states: a row keeps its slot while it is
listed, new rows take slots empty before those just emptied, content goes out only when a row's facts change.
"""

from __future__ import annotations

from dash import no_update

from dashboard.slots import Row, SlotList


def rows(*keys: str, facts: dict[str, object] | None = None) -> list[Row]:
    return [
        Row(key, (facts or {}).get(key, key), lambda key=key: [f"content of {key}"], f"class-{key}") for key in keys
    ]


def sent(values: list) -> dict[int, object]:
    """slot -> children sent (slots left alone are missing)"""
    return {i: value for i, value in enumerate(values[0]) if value is not no_update}


def test_rows_keep_their_slots_and_only_new_content_is_sent() -> None:
    slots = SlotList("x", 4, "nothing yet")
    values, shown = slots.update(None, rows("a", "b"))
    assert sent(values) == {0: ["content of a"], 1: ["content of b"]}
    assert values[1:] == [
        ["class-a", "class-b", "", ""],
        [{"order": 0}, {"order": 1}, {}, {}],
        [False, False, True, True],
        True,
    ]
    # "c" arrives on top: it takes an empty slot, a and b stay where they are and are not sent again.
    values, shown = slots.update(shown, rows("c", "a", "b"))
    assert sent(values) == {2: ["content of c"]}
    assert values[2] == [{"order": 1}, {"order": 2}, {"order": 0}, {}]
    # "b" drops off while "d" arrives: d takes the slot that was empty all along, b's slot is cleared.
    values, shown = slots.update(shown, rows("d", "c", "a"))
    assert sent(values) == {1: [], 3: ["content of d"]}
    assert values[3] == [False, True, False, False] and shown["keys"] == ["a", None, "c", "d"]
    # Nothing changed: nothing is sent; a changed row is sent again in its own slot.
    values, shown = slots.update(shown, rows("d", "c", "a"))
    assert sent(values) == {}
    values, shown = slots.update(shown, rows("d", "c", "a", facts={"c": "c, now with more messages"}))
    assert sent(values) == {2: ["content of c"]}


def test_a_full_list_reuses_the_slots_of_rows_that_dropped_off_and_stays_within_capacity() -> None:
    slots = SlotList("x", 3, "nothing yet")
    _, shown = slots.update(None, rows("a", "b", "c"))
    values, shown = slots.update(shown, rows("e", "d", "a", "b", "c"))  # more rows than slots: the first three
    assert shown["keys"] == ["a", "e", "d"]
    assert sent(values) == {1: ["content of e"], 2: ["content of d"]}
    values, shown = slots.update(shown, [])
    assert shown["keys"] == [None, None, None] and values[3] == [True, True, True] and values[4] is False


def test_a_key_listed_twice_is_one_row_and_slots_map_back_to_keys() -> None:
    slots = SlotList("x", 3, "nothing yet")
    _, shown = slots.update({"keys": ["stale", None], "prints": [None, None]}, rows("a", "a", "b"))
    assert shown["keys"] == ["a", "b", None]  # a browser state of another size is started afresh
    assert [SlotList.key_at(shown, i) for i in (0, 1, 2, 3, -1)] == ["a", "b", None, None, None]
