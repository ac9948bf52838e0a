"""Executable theorem statements built on `dynamics` (python -m theorems).

The registry of theorems lives in `theorems.registry` (THEOREMS, get); importing this package
does not import the theorem modules.
"""

from .harness import BUDGETS as BUDGETS
from .harness import Claim as Claim
from .harness import Theorem as Theorem
from .harness import Verdict as Verdict
from .harness import verify as verify
