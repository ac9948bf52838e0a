"""The result of `simulate`."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """Saved states (or observables) of one run.

    ts: (T,) times actually saved, in ``time_unit`` ("physical": t = k * lr for discrete methods).
    ys: pytree like y0 (or like the ``observe`` output), each leaf with a leading axis of length T.
    stats: solver counters (steps, accepted/rejected steps, field evaluations, gradient count).
    """

    ts: np.ndarray
    ys: object
    time_unit: str = "physical"
    stats: dict = dataclasses.field(default_factory=dict)

    def __len__(self):
        return len(self.ts)
