"""Exceptions raised by `dynamics`: each names the violated assumption."""


class DynamicsError(Exception):
    """Base class of every error raised by `dynamics`."""


class InputError(DynamicsError, ValueError):
    """Malformed input: shapes, labels outside {-1, +1}, NaN/Inf, non-increasing times."""


class NonSeparableError(DynamicsError, ValueError):
    """Data that is not linearly separable through the origin.

    ``certificate`` holds Farkas weights a >= 0, sum(a) = 1 with Z^T a = 0 (z_n = y_n x_n): a
    convex combination of the signed points that equals zero, so no w has Z w > 0.
    """

    def __init__(self, message, certificate=None):
        super().__init__(message)
        self.certificate = certificate


class StepSizeError(DynamicsError, ValueError):
    """A learning rate outside the range a theorem or a method assumes."""


class PrecisionError(DynamicsError, ValueError):
    """A dtype that cannot resolve the requested horizon (e.g. float32 past the underflow horizon)."""


class SolverBudgetError(DynamicsError, RuntimeError):
    """An adaptive solver ran out of steps (mostly accepted ones) before the last requested time."""


class DivergenceError(DynamicsError, FloatingPointError):
    """A run produced a non-finite state.

    ``step`` is the first non-finite iterate (discrete methods) and ``time`` its time; for flows,
    ``time`` is the last saved time that was still finite. ``trajectory`` holds what was saved.
    """

    def __init__(self, message, step=None, time=None, trajectory=None):
        super().__init__(message)
        self.step = step
        self.time = time
        self.trajectory = trajectory
