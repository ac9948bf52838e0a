"""The registered theorems, in the order `python -m theorems` runs them."""

from .nacson2019_sgd import NacsonSrebroSoudry2019
from .nacson2019_tails import Nacson2019
from .soudry2018 import Soudry2018

THEOREMS = {t.id: t for t in (Soudry2018(), Nacson2019(), NacsonSrebroSoudry2019())}


def get(ids=None):
    """Theorems by id (all when ids is empty); unknown ids raise KeyError naming the known ones."""
    if not ids:
        return list(THEOREMS.values())
    unknown = [i for i in ids if i not in THEOREMS]
    if unknown:
        raise KeyError(f"unknown theorem id(s) {unknown}; known: {sorted(THEOREMS)}")
    return [THEOREMS[i] for i in ids]
