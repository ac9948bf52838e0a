"""Time averages predicted by the central flow (Cohen, Damian, Talwalkar, Kolter, Lee, ICLR 2025; docs/flows.md
section 10.1).

GD at the edge of stability oscillates about the central flow's w with covariance Sigma = V X V^T (V: the top-k
eigenvectors, X: the SDCP solution, both held in a `CentralFlowState`). To second order in the oscillation, the time
average of any smooth f over GD's iterates is

    <f> = f(w) + (1/2) <Sigma, H_f(w)> = f(w) + (1/2) sum_ij X_ij v_i^T H_f(w) v_j,

exact for quadratic f (E f(w + d) = f(w) + (1/2) tr(H_f Cov d) when E d = 0). f = L gives the predicted loss.
"""

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..derivatives import hvp
from ..errors import InputError
from ..processes.eos import CentralFlowState


def central_flow_time_average(f, state):
    """f(w) + (1/2) <Sigma, H_f(w)> at a `CentralFlowState` (w = state.params, Sigma = V X V^T from its first k block
    columns and X): the central flow's prediction of f averaged over GD's oscillation. k Hessian-vector products of
    f, no dense Hessian. ``state`` may be one state or states saved along a run (leaves with a leading time axis,
    ``simulate(flow, w0, ts, observe_state=True).ys``): the result is then one value per saved time. f takes the
    parameters (the same pytree as w) and returns a scalar."""
    if not isinstance(state, CentralFlowState):
        raise InputError(f"central_flow_time_average takes a CentralFlowState (simulate(flow, w0, ts, "
                         f"observe_state=True).ys or flow.init(w0)), got {type(state).__name__}")
    if jnp.ndim(state.X) == 3:
        return jax.vmap(lambda s: central_flow_time_average(f, s))(state)
    flat, unravel = ravel_pytree(state.params)
    F = lambda v: f(unravel(v))
    V = state.block[:, :state.X.shape[0]]
    HV = jax.vmap(lambda v: hvp(F)(flat, v), out_axes=1)(V.T)
    return F(flat) + 0.5 * jnp.sum(state.X * (V.T @ HV))
