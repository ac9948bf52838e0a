"""Exceptions raised by `dynamics`: each names the violated assumption. Checks inside compiled code raise them through
`error_if` (tagged messages) and `compiled_errors` (the translation back), see `error_if`."""

import contextlib
import re

import equinox as eqx
import jax


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


# ----------------------------------------------------------------------------- errors raised inside compiled code

#: ``[dynamics:<ErrorClass>] message``: how a check inside compiled code names the exception it stands for.
_TAG = re.compile(r"\[dynamics:(\w+)\] ?(.*?)(?:\n\n-{5,}.*)?$", re.DOTALL)
_EQUINOX_MESSAGE = re.compile(r"EquinoxRuntimeError: (.*?)(?:\n\n-{5,}.*)?$", re.DOTALL)


def error_if(x, pred, message, error=None):
    """``x``, with a check inside compiled code: where the (traced) boolean ``pred`` holds, the run stops and the caller
    of `simulate` gets ``error(message)`` (a `DynamicsError` subclass, `InputError` by default), message first.

    This is ``equinox.error_if`` with the message tagged ``[dynamics:<ErrorClass>]``; `compiled_errors` reads the tag.
    Processes use it for failures only known at run time (h lambda = 1 in the principal flow, a non-holomorphic loss)."""
    error = InputError if error is None else error
    if not (isinstance(error, type) and issubclass(error, DynamicsError)):
        raise TypeError(f"error must be a DynamicsError subclass, got {error!r}")
    return eqx.error_if(x, pred, f"[dynamics:{error.__name__}] {message}")


def from_runtime_error(error):
    """The `DynamicsError` an Equinox/XLA runtime error stands for, or None when it carries no `error_if` tag and is not
    an Equinox check (an out-of-memory error, say, stays as it is). An untagged Equinox check becomes a `DynamicsError`
    with its own message."""
    text = str(error)
    tagged = _TAG.search(text)
    if tagged:
        cls = globals().get(tagged.group(1))
        cls = cls if isinstance(cls, type) and issubclass(cls, DynamicsError) else DynamicsError
        return cls(tagged.group(2).strip())
    if isinstance(error, eqx.EquinoxRuntimeError):
        found = _EQUINOX_MESSAGE.search(text)
        return DynamicsError((found.group(1) if found else text).strip())
    return None


@contextlib.contextmanager
def compiled_errors():
    """Re-raise errors raised inside compiled code (``eqx.error_if``, `error_if`) as the library's own exception,
    message first and without the JAX/diffrax traceback in front (``raise ... from None``)."""
    try:
        yield
    except (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError) as error:
        mapped = from_runtime_error(error)
        if mapped is None:
            raise
        raise mapped from None
