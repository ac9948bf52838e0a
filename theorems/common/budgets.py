"""Budgets: "quick" (the main job and CI: minutes on 2 cores) and "full" (the horizons the papers talk about)."""

from ..harness import BUDGETS


def by_budget(budget, quick, full):
    """The setting for ``budget``: ``quick`` or ``full`` (raises ValueError naming the budgets otherwise)."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    return quick if budget == "quick" else full
