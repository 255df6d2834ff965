"""Small statistics shared by the benchmarks."""

from __future__ import annotations

from typing import Any


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * (len(ordered) - 1) + 0.5))], 3)


def flat(values: list[float]) -> dict[str, Any]:
    """Growth of the last third against the second third (the first third is warm-up); flat within 10 %."""
    values = [v for v in values if v is not None and v == v]  # drop missing and NaN
    if len(values) < 3:
        return {"growth": None, "flat": None}
    third = max(1, len(values) // 3)
    middle, last = values[third : 2 * third], values[-third:]
    growth = (sum(last) / len(last)) / max(1e-9, sum(middle) / len(middle)) - 1
    return {"growth": round(growth, 3), "flat": abs(growth) <= 0.10}
