"""The process contract: abstract methods, subclassing, the time convention, cost metadata in traj.stats, and models
given as pytrees with non-array leaves (Equinox modules)."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynamics as dy
from dynamics.processes.base import StepCost, TimeUnit


class Shrink(dy.AbstractDiscrete):
    """theta_{k+1} = (1 - lr) theta_k, declared in constructor order (loss first, as documented)."""

    loss: object
    lr: object

    def step(self, theta, k):
        return (1.0 - self.lr) * theta


def test_subclass_positional_and_keyword():
    ts = [0.0, 0.5, 1.0]
    for process in (Shrink(None, 0.5), Shrink(loss=None, lr=0.5)):
        traj = dy.simulate(process, jnp.ones(2), ts)
        np.testing.assert_array_equal(np.asarray(traj.ys)[:, 0], [1.0, 0.5, 0.25])
        assert traj.time_unit is TimeUnit.PHYSICAL and traj.time_unit == "physical"


def test_abstract_methods_are_enforced():
    class NoStep(dy.AbstractDiscrete):
        lr: object

    class NoField(dy.AbstractFlow):
        pass

    with pytest.raises(TypeError, match="abstract"):
        NoStep(0.1)
    with pytest.raises(TypeError, match="abstract"):
        NoField()


def test_step_cost_totals():
    assert StepCost(1.0, 2.0).times(10) == {"gradients": 10, "hvps": 20, "third": 0}
    assert StepCost(0.25).times(3) == {"gradients": 0.75, "hvps": 0, "third": 0}


def _quadratic(w):
    return 0.5 * jnp.sum(jnp.arange(1.0, w.size + 1) * w**2)


def test_discrete_stats_report_true_counts():
    w0 = jnp.ones(3)
    dal = dy.simulate(dy.DriftAdjustedGD(_quadratic, hg="hvp"), w0, [0.0, 40.0])
    assert (dal.stats["steps"], dal.stats["gradients"], dal.stats["hvps"]) == (40, 40, 40)
    fd = dy.simulate(dy.DriftAdjustedGD(_quadratic, hg="finite_difference"), w0, [0.0, 40.0])
    assert (fd.stats["gradients"], fd.stats["hvps"]) == (80, 0)
    X = np.array([[1.0, 0.0], [0.0, 2.0], [2.0, 2.0], [3.0, -0.5]])
    loss = dy.linear_classifier(X, np.ones(4), "logistic")
    sgd = dy.SGD(loss, 0.1, 1, jax.random.PRNGKey(0))
    ensemble = dy.SeedEnsemble(sgd, jax.random.split(jax.random.PRNGKey(1), 3))
    traj = dy.simulate(ensemble, jnp.zeros((3, 2)), [0.0, 0.8])
    assert traj.stats["steps"] == 8 and traj.stats["gradients"] == 3 * 8 * 1 / 4  # 3 seeds, B / N = 1/4


def test_central_flow_counts_its_eigensolver_hvps():
    flow = dy.CentralFlow(_quadratic, 0.5, k=1, substeps=2, method="dense")
    traj = dy.simulate(flow, jnp.ones(3), [0.0, 3.0])
    # dense eigh builds the Hessian from n = 3 HVPs per substep; 3 steps x 2 substeps; eta lambda <= 0.5 * 3 < 1.95:
    # no critical eigenvalue, so no third-derivative products (computed on the critical block only)
    assert traj.stats["hvps"] == 3 * 2 * 3 and traj.stats["gradients"] == 6 and traj.stats["third"] == 0


@pytest.mark.parametrize("solver, dt0", [(diffrax.Tsit5(), None), (diffrax.Dopri8(), 0.01), (diffrax.Heun(), 0.05),
                                         (diffrax.Bosh3(), None)])
def test_flow_field_evaluations_match_a_counting_callback(solver, dt0):
    calls = []

    def loss(w):
        jax.debug.callback(lambda: calls.append(1))
        return jnp.sum(jnp.cosh(w))

    traj = dy.simulate(dy.GradientFlow(loss), jnp.ones(3), [0.0, 1.0, 5.0], solver=solver, dt0=dt0)
    jax.effects_barrier()
    assert abs(traj.stats["field_evaluations"] - len(calls)) <= 3
    assert traj.stats["gradients"] == traj.stats["field_evaluations"]


def test_log_time_on_a_discrete_process_is_refused():
    with pytest.raises(dy.InputError, match="log_time"):
        dy.simulate(dy.GradientDescent(_quadratic, 0.1), jnp.ones(2), [0.0, 1.0], log_time=True)


def test_not_a_process_is_refused():
    with pytest.raises(dy.InputError, match="OptaxMethod"):
        dy.simulate(lambda w: w, jnp.ones(2), [0.0, 1.0])


# ----------------------------------------------------------------------------- Equinox models


@pytest.fixture(scope="module")
def mlp_problem():
    model = eqx.nn.MLP(2, 1, 8, 2, activation=jnp.tanh, key=jax.random.PRNGKey(0))
    X = jax.random.normal(jax.random.PRNGKey(1), (16, 2))
    y = jnp.sin(X[:, 0])

    def loss(m):
        return jnp.mean((jax.vmap(m)(X)[:, 0] - y) ** 2)

    return model, loss


def _plain_gd(model, loss, lr, steps):
    """An independent loop: eqx.filter_grad and eqx.apply_updates."""
    grad = eqx.filter_jit(eqx.filter_grad(loss))
    for _ in range(steps):
        g = grad(model)
        model = eqx.apply_updates(model, jax.tree_util.tree_map(lambda x: -lr * x, g))
    return model


def test_equinox_module_runs_through_gd(mlp_problem):
    model, loss = mlp_problem
    traj = dy.simulate(dy.GradientDescent(loss, 0.1), model, [0.0, 1.0, 2.0])
    assert isinstance(traj.ys, eqx.nn.MLP)  # module structure kept, array leaves stacked
    assert traj.ys.layers[0].weight.shape == (3, 8, 2)
    expected = _plain_gd(model, loss, 0.1, 20)
    last = jax.tree_util.tree_map(lambda leaf: leaf[-1], eqx.filter(traj.ys, eqx.is_array))
    for a, b in zip(jax.tree_util.tree_leaves(last), jax.tree_util.tree_leaves(eqx.filter(expected, eqx.is_array))):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_equinox_module_flow_and_observe(mlp_problem):
    model, loss = mlp_problem
    traj = dy.simulate(dy.GradientFlow(loss), model, [0.0, 1.0], observe=lambda t, m: loss(m), rtol=1e-10,
                       atol=1e-12)
    assert traj.ys.shape == (2,) and traj.ys[1] < traj.ys[0]


def test_pytree_without_float_leaves_is_refused():
    with pytest.raises(dy.InputError, match="no floating-point array"):
        dy.simulate(dy.GradientDescent(_quadratic, 0.1), {"n": 3, "f": jnp.tanh}, [0.0, 1.0])
    with pytest.raises(dy.InputError, match=r"y0\['w'\]"):
        dy.simulate(dy.GradientDescent(_quadratic, 0.1), {"w": jnp.array([1.0, np.nan])}, [0.0, 1.0])


def test_flax_nnx_model_directly_and_split():
    """Flax nnx: a module runs directly, and so does its nnx.split state (the documented pattern)."""
    nnx = pytest.importorskip("flax.nnx")

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden, self.out = nnx.Linear(2, 8, rngs=rngs), nnx.Linear(8, 1, rngs=rngs)

        def __call__(self, x):
            return self.out(jnp.tanh(self.hidden(x)))

    X = jax.random.normal(jax.random.PRNGKey(1), (16, 2))
    y = jnp.sin(X[:, 0])
    model = Net(nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    split_loss = lambda p: jnp.mean((nnx.merge(graphdef, p)(X)[:, 0] - y) ** 2)
    split_run = dy.simulate(dy.GradientDescent(split_loss, 0.1), params, [0.0, 1.0])
    direct_run = dy.simulate(dy.GradientDescent(lambda m: jnp.mean((m(X)[:, 0] - y) ** 2), 0.1), model, [0.0, 1.0])
    w = split_run.ys["hidden"]["kernel"][...]
    assert w.dtype == jnp.float32 and w.shape == (2, 2, 8)  # float32 parameters stay float32
    np.testing.assert_allclose(direct_run.ys.hidden.kernel[...], w, rtol=1e-6)
    # an independent loop: nnx.grad and in-place updates
    for _ in range(10):
        grads = nnx.grad(lambda m: jnp.mean((m(X)[:, 0] - y) ** 2))(model)
        nnx.update(model, jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, nnx.state(model, nnx.Param), grads))
    np.testing.assert_allclose(model.hidden.kernel[...], w[-1], rtol=1e-5, atol=1e-6)


def test_per_example_objective_runs_in_full_batch_processes():
    """per_example(fn, data) is an objective for every full-batch process; compared with the plain mean loss."""
    X = np.array([[1.0, 0.5], [0.2, -1.0], [2.0, 0.3]])
    y = np.array([1.0, -0.5, 2.0])
    objective = dy.per_example(lambda w, ex: 0.5 * (ex[0] @ w - ex[1]) ** 2, (X, y))
    plain = lambda w: 0.5 * jnp.mean((X @ w - y) ** 2)
    w0 = jnp.zeros(2)
    for make in (lambda L: dy.GradientFlow(L), lambda L: dy.ModifiedFlow(L, 0.1, 2)):
        a = dy.simulate(make(objective), w0, [0.0, 2.0], rtol=1e-12, atol=1e-14).ys[-1]
        b = dy.simulate(make(plain), w0, [0.0, 2.0], rtol=1e-12, atol=1e-14).ys[-1]
        np.testing.assert_allclose(a, b, rtol=1e-10)
    a = dy.simulate(dy.Nesterov(objective, 0.1, 0.5), w0, [0.0, 1.0]).ys[-1]
    b = dy.simulate(dy.Nesterov(plain, 0.1, 0.5), w0, [0.0, 1.0]).ys[-1]
    np.testing.assert_allclose(a, b, rtol=1e-13)
