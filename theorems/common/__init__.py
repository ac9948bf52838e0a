"""The shared vocabulary of theorem modules: budgets, seeded datasets, run helpers, claim constructors, figures.

A theorem module reads like its paper: which data (`datasets`), which runs (`runs`), which claims (`claims`, each
with its role and the reason for its tolerance), one figure (`figures`).
"""

from . import claims as claims
from . import datasets as datasets
from . import figures as figures
from . import runs as runs
from .budgets import by_budget as by_budget
