"""Edge-of-stability problems (MLP regression data with their initial parameters). Registered with `register`.

Each generator draws only from a JAX key made from ``seed`` (``jax.random.PRNGKey(seed)`` split into data and
initialization keys), so the same (name, seed, options) gives the same data and the same initial network everywhere.
Parameters are returned as the list of (W, b) pairs of `dynamics.models.mlp.mlp_init`, as NumPy float64 arrays.
"""

import jax
import numpy as np

from dynamics.models.mlp import mlp_init

from . import register


def _regression(seed, n, d, hidden):
    """x_i ~ N(0, I_d), y_i ~ N(0, 1) (i = 1..n) and LeCun-normal MLP weights d -> hidden -> 1 (zero biases)."""
    kx, ky, kp = jax.random.split(jax.random.PRNGKey(seed), 3)
    sizes = (d, *hidden, 1)
    params = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in mlp_init(kp, sizes)]
    return {"X": np.asarray(jax.random.normal(kx, (n, d)), np.float64),
            "y": np.asarray(jax.random.normal(ky, (n,)), np.float64), "params": params, "sizes": sizes}


@register("eos_mlp")
def eos_mlp(seed=0):
    """The central-flows CPU MLP problem (docs/flows.md section 8; central_flows_jax examples/mlp.ipynb): 128
    standard-normal inputs in R^8 with standard-normal labels and an 8-16-16-1 MLP (433 parameters) at its
    LeCun-normal initialization. Returns {"X": (128, 8), "y": (128,), "params": [(W, b), ...], "sizes"}."""
    return _regression(seed, 128, 8, (16, 16))


@register("gfs_mlp")
def gfs_mlp(seed=0, d=8, n=8, width=8):
    """Small regression problems for the GFS-sharpness experiments beyond scalar networks (docs/flows.md section
    13): ``n`` standard-normal inputs in R^d with standard-normal labels and a d-width-width-1 MLP at its
    LeCun-normal initialization. Returns {"X": (n, d), "y": (n,), "params": [(W, b), ...], "sizes"}."""
    return _regression(seed, n, d, (width, width))
