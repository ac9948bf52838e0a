"""Order of accuracy of a continuous model of a discrete method, measured over a ladder of step sizes.

local:  e(h) = ||theta_1 - theta(h)||            (one step; O(h^(r+1)) for a flow of order r)
global: e(h) = ||theta_N - theta(N h)||, N h = T (fixed horizon; O(h^r))
The slope of log e against log h is fitted by least squares with its standard error. Complex flow states
(the principal flow) are compared through their real part, the physical one.
"""

import dataclasses

import diffrax
import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from ..errors import InputError
from ..validation import finite_array
from .rates import loglog_slope
from ..simulate import simulate


@dataclasses.dataclass(frozen=True)
class OrderFit:
    step_sizes: np.ndarray
    errors: np.ndarray
    slope: float
    slope_stderr: float
    kind: str


def _flat_real(tree):
    return np.real(np.asarray(ravel_pytree(jax.tree_util.tree_map(lambda leaf: leaf[-1], tree))[0]))


def convergence_order(discrete, flow, y0, step_sizes, kind="local", horizon=None, flow_y0=None,
                      rtol=1e-13, atol=1e-15, solver=None):
    """Fit the order of ``flow(h)`` as a model of ``discrete(h)`` (both factories of processes).

    kind="local" compares one step; kind="global" compares at t = ``horizon`` (horizon / h must be an
    integer). step_sizes: at least two distinct positive values. Zero or non-finite errors raise `InputError`.
    ``flow_y0`` (e.g. y0.astype(complex) for the principal flow) defaults to y0. The flow is
    integrated with Dopri8 at rtol 1e-13 so that its own error stays far below the measured ones.
    """
    if kind not in ("local", "global"):
        raise InputError(f"kind must be 'local' or 'global', got {kind!r}")
    step_sizes = finite_array("step_sizes", step_sizes, ndim=1).astype(float)
    if step_sizes.size < 2:
        raise InputError("convergence_order needs at least two step sizes")
    if np.any(step_sizes <= 0):
        raise InputError(f"step sizes must be positive, got {step_sizes.tolist()}")
    if np.unique(step_sizes).size != step_sizes.size:
        raise InputError(f"step sizes must be distinct (a slope needs different h), got {step_sizes.tolist()}")
    errors = []
    for h in step_sizes:
        t_end = h if kind == "local" else horizon
        if kind == "global" and (horizon is None or abs(horizon / h - round(horizon / h)) > 1e-9):
            raise InputError(f"global errors need horizon / h to be an integer; got horizon={horizon}, h={h}")
        ts = np.array([0.0, t_end])
        end_discrete = _flat_real(simulate(discrete(h), y0, ts).ys)
        end_flow = _flat_real(simulate(flow(h), y0 if flow_y0 is None else flow_y0, ts, rtol=rtol, atol=atol,
                                       solver=solver or diffrax.Dopri8()).ys)
        errors.append(np.linalg.norm(end_discrete - end_flow))
    errors = np.array(errors)
    if not np.all(np.isfinite(errors)) or np.any(errors == 0):
        raise InputError(f"errors {errors.tolist()} at h = {step_sizes.tolist()}: a zero error (the flow reproduces "
                         "the discrete method exactly, e.g. a constant or linear field) or a non-finite one has no "
                         "order to fit on a log scale")
    fit = loglog_slope(step_sizes, errors)
    return OrderFit(step_sizes=step_sizes, errors=errors, slope=fit.slope, slope_stderr=fit.slope_stderr, kind=kind)
