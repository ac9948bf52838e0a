"""The result of `simulate` and its clock."""

import dataclasses
import enum

import numpy as np


class TimeUnit(str, enum.Enum):
    """The clock of a trajectory (compares equal to its string value)."""

    PHYSICAL = "physical"  # t_k = sum_{j<k} lr_j (t = k lr for a constant rate); flows: t itself
    STEP = "step"  # t = k
    TAU = "tau"  # tau = log(1 + t) (log-time runs saved on a tau grid)

    def __str__(self):
        return self.value


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """Saved states (or observables) of one run.

    ts: (T,) times actually saved, in ``time_unit`` (`TimeUnit`: physical t_k = sum_{j<k} lr_j for discrete methods).
    ys: pytree like y0 (or like the ``observe`` output), each leaf with a leading axis of length T.
    stats: counters: steps (discrete) or diffrax's accepted/rejected steps and field_evaluations (explicit RK flows),
    and the derivative evaluations they cost (gradients, hvps, third) from the process's `StepCost`.
    """

    ts: np.ndarray
    ys: object
    time_unit: TimeUnit = TimeUnit.PHYSICAL
    stats: dict = dataclasses.field(default_factory=dict)

    def __len__(self):
        return len(self.ts)
