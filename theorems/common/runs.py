"""Run helpers: the few ways theorem modules run processes, written once."""

import jax
import numpy as np

import dynamics as dyn


def gf_log_time(loss, y0, taus, *, observe=None, rtol=1e-12, atol=1e-14, solver=None, max_steps=100_000):
    """Gradient flow in log time saved at tau = log(1 + t) in ``taus`` (tau itself on the grid when t = e^tau would
    overflow float64, tau > 700). Returns the saved pytree (leading axis len(taus)), as NumPy."""
    taus = np.asarray(taus, float)
    big = taus[-1] > 700.0
    ts = np.r_[0.0, taus] if big else np.expm1(np.r_[0.0, taus])
    traj = dyn.simulate(dyn.GradientFlow(loss), y0, ts, observe=observe, log_time=True, tau_grid=big, rtol=rtol,
                        atol=atol, solver=solver, max_steps=max_steps)
    return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[1:], traj.ys)


def gd_saves(process, y0, steps, *, observe=None):
    """A discrete process saved at the iterate indices ``steps`` (increasing, starting anywhere >= 0); returns
    (steps actually saved, saved pytree as NumPy)."""
    steps = np.asarray(steps, np.int64)
    h = float(process.step_size(np.zeros(1, np.int64))[0])
    traj = dyn.simulate(process, y0, steps * h, observe=observe)
    return np.rint(traj.ts / h).astype(np.int64), jax.tree_util.tree_map(np.asarray, traj.ys)


def geometric_steps(last, per_decade=3, first=1):
    """Iterate indices 0 and ~``per_decade`` per decade from ``first`` to ``last`` (unique integers)."""
    decades = np.log10(last / first)
    grid = np.unique(np.rint(np.logspace(np.log10(first), np.log10(last), max(2, int(per_decade * decades) + 1))))
    return np.r_[0, grid].astype(np.int64)
