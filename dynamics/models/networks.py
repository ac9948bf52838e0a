"""Linear networks f(x; params) = x . beta(params): each gives its end-to-end predictor beta (d,).

Classification: `classification_loss(net, X, y, loss)` (sum of l(y_n x_n . beta)); regression:
`regression_loss(net, X, y)` = (1/2) sum_n (x_n . beta - y_n)^2. Initializations by scale alpha and
shape s follow docs/implicit-bias.md sections 5-7; inputs outside a scheme's domain raise InputError.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from .losses import MarginLoss
from .linear import tail_from
from ..validation import finite_array, labelled_data


def _concrete(x):
    """True when x has a value to check (not a tracer inside jit/vmap, where domain checks are skipped)."""
    return not isinstance(x, jax.core.Tracer)


def _require_depth(depth, minimum=1):
    if not (isinstance(depth, (int, np.integer)) and depth >= minimum):
        raise InputError(f"depth must be an integer >= {minimum}, got {depth!r}")
    return int(depth)


class AbstractLinearNetwork(eqx.Module):
    """A network linear in x: f(x; params) = x . predictor(params)."""

    def predictor(self, params):
        raise NotImplementedError

    def margins(self, params, Z):
        return Z @ self.predictor(params)


class DeepLinear(AbstractLinearNetwork):
    """Fully connected deep linear net beta = W_1 W_2 ... W_{L-1} w_L; params = [W_1 (d x k_1), ..., w_L (k_{L-1},)]."""

    def predictor(self, params):
        out = params[-1]
        for W in reversed(params[:-1]):
            out = W @ out
        return out

    @staticmethod
    def init(key, d, widths, scale):
        """Gaussian layers of shapes d x k_1, ..., k_{L-1} (widths = (k_1, ..., k_{L-1})), each times scale."""
        shapes = list(zip((d,) + tuple(widths), tuple(widths) + (None,)))
        keys = jax.random.split(key, len(shapes))
        return [scale * jax.random.normal(k, (a,) if b is None else (a, b)) for k, (a, b) in zip(keys, shapes)]


class DiagonalNetwork(AbstractLinearNetwork):
    """Depth-L diagonal nets on R^d.

    form="pm":  beta = w_+^L - w_-^L (params (w_+, w_-)), Woodworth et al. 2020;
    form="uv":  beta = u_+ v_+ - u_- v_- (params (u_+, v_+, u_-, v_-)), Azulay et al. 2021 (depth 2, unbiased);
    form="biased_uv": beta = u v (params (u, v));
    form="product": beta = w_1 ... w_L (params (w_1, ..., w_L)), the plain diagonal net of Gunasekar et al. 2018.
    """

    depth: int = eqx.field(static=True)
    form: str = eqx.field(static=True)

    def __init__(self, depth, form="pm"):
        self.depth = _require_depth(depth)
        if form not in ("pm", "uv", "biased_uv", "product"):
            raise InputError(f"form must be 'pm', 'uv', 'biased_uv' or 'product', got {form!r}")
        if form in ("uv", "biased_uv") and self.depth != 2:
            raise InputError(f"the u*v forms have depth 2, got depth {depth}")
        self.form = form

    def predictor(self, params):
        if self.form == "pm":
            return params[0] ** self.depth - params[1] ** self.depth
        if self.form == "uv":
            return params[0] * params[1] - params[2] * params[3]
        out = params[0]
        for w in params[1:]:
            out = out * w
        return out

    def init(self, alpha, shape=0.0, d=None):
        """Scale alpha (> 0; scalar or (d,)) and shape s in (-1, 1) for "uv":
        pm: w_+ = w_- = alpha (beta(0) = 0); uv: u0 = sqrt(alpha (1 - s)/(1 + s)), v0 = sqrt(alpha (1 + s)/(1 - s))
        for both pairs (beta(0) = 0, kappa = 4 alpha (1 + s^2)/(1 - s^2)); product: every layer alpha."""
        alpha = jnp.asarray(alpha, float)
        if d is not None:
            alpha = jnp.broadcast_to(alpha, (d,))
        if _concrete(alpha) and not bool(jnp.all(alpha > 0)):
            raise InputError(f"the initialization scale alpha must be > 0, got {alpha}")
        if self.form == "pm":
            return alpha, alpha
        if self.form == "uv":
            shape = jnp.asarray(shape, float)
            if _concrete(shape) and not bool(jnp.all(jnp.abs(shape) < 1)):
                raise InputError(f"the initialization shape s must lie in (-1, 1), got {shape}")
            u0 = jnp.sqrt(alpha * (1 - shape) / (1 + shape)) * jnp.ones_like(alpha)
            v0 = jnp.sqrt(alpha * (1 + shape) / (1 - shape)) * jnp.ones_like(alpha)
            return u0, v0, u0, v0
        return tuple(alpha for _ in range(self.depth if self.form == "product" else 2))


def unitary_dft(d):
    """F (d x d) with F_jk = exp(-2 pi i j k / d) / sqrt(d)."""
    k = np.arange(d)
    return np.exp(-2j * np.pi * np.outer(k, k) / d) / np.sqrt(d)


class ConvolutionalNetwork(AbstractLinearNetwork):
    """L-layer 1-D circular linear convolutional net (Gunasekar et al. 2018), h_0 = x in R^D,
    h_l[i] = D^{-1/2} sum_k w_l[k] h_{l-1}[(i + k) mod D] for l < L (filters of length ``filter_sizes[l]``,
    zero-padded to D), output <h_{L-1}, w_L> with a full-length w_L. In the DFT, beta-hat is, up to the
    D-dependent constant, the product of the filters' conjugated DFTs. params: list of L filters.
    """

    depth: int = eqx.field(static=True)

    def __init__(self, depth):
        self.depth = _require_depth(depth)

    def predictor(self, params):
        D = params[-1].shape[0]
        beta = params[-1]
        # <h_{L-1}, w_L> = <x, C_1^T ... C_{L-1}^T w_L> with (C^T v)[j] = D^{-1/2} sum_k w[k] v[(j - k) mod D]
        for w in reversed(params[:-1]):
            w = jnp.zeros(D, beta.dtype).at[: w.shape[0]].set(w)
            beta = jnp.real(jnp.fft.ifft(jnp.fft.fft(w) * jnp.fft.fft(beta))) / jnp.sqrt(D)
        return beta


class TensorNetwork(AbstractLinearNetwork):
    """Linear tensor network (Yun, Krishnan, Mobahi 2021): f(x; v_1..v_L) = M(x)(v_1, ..., v_L) with
    M(x) = sum_i x_i T[..., i] for a data tensor T of shape (k_1, ..., k_L, d), so beta_i = T[..., i](v_1..v_L)."""

    tensor: jax.Array

    def predictor(self, params):
        out = self.tensor
        for v in params:
            out = jnp.tensordot(v, out, axes=(0, 0))
        return out


class ODeCoNetwork(AbstractLinearNetwork):
    """Orthogonally decomposable tensor network: M(x) = sum_j [S x]_j u_1^j (x) ... (x) u_L^j, S (m x d),
    U_l (k x m) with orthonormal columns u_l^j. beta = S^T rho with rho_j = prod_l (U_l^T v_l)_j: a diagonal
    network on the transformed data S x (the reduction identity)."""

    S: jax.Array
    U: tuple

    def predictor(self, params):
        rho = jnp.ones(self.S.shape[0])
        for U_l, v in zip(self.U, params):
            rho = rho * (U_l.T @ v)
        return self.S.T @ rho

    def orthogonality_defect(self):
        """max_l ||U_l^T U_l - I||_max: 0 when every U_l has orthonormal columns (an ODeCo network)."""
        defects = [float(jnp.max(jnp.abs(U.T @ U - jnp.eye(U.shape[1])))) for U in self.U]
        return max(defects)


def require_odeco(network, tol=1e-10):
    """Raise InputError (with the measured defect) unless the layers' U_l have orthonormal columns."""
    defect = network.orthogonality_defect()
    if defect > tol:
        raise InputError(f"the data tensor is not orthogonally decomposable: max_l ||U_l^T U_l - I|| = {defect:.3g} "
                         f"> {tol:g}; the ODeCo theorems do not apply")


class TwoLayerHomogeneous(eqx.Module):
    """Bias-free two-layer net f(x) = sum_j a_j sigma(w_j . x), sigma = relu (2-homogeneous) or square
    (3-homogeneous); params (W (k x d), a (k,)). Not linear in x: provides margins only."""

    activation: str = eqx.field(static=True, default="relu")

    @property
    def homogeneity(self):
        return 2 if self.activation == "relu" else 3

    def outputs(self, params, X):
        W, a = params
        pre = X @ W.T
        act = jax.nn.relu(pre) if self.activation == "relu" else pre**2
        return act @ a

    def margins(self, params, data):
        X, y = data
        return y * self.outputs(params, X)


def classification_loss(network, X, y, loss="exp", reduction="sum"):
    """sum_n l(y_n f(x_n; params)) for a linear network (data Z = y x) or a homogeneous net (data (X, y))."""
    X, y, Z = labelled_data(X, y)
    if isinstance(network, AbstractLinearNetwork):
        return MarginLoss(network.margins, jnp.asarray(Z), tail_from(loss), reduction)
    return MarginLoss(network.margins, (jnp.asarray(X), jnp.asarray(y)), tail_from(loss), reduction)


def regression_loss(network, X, y):
    """(1/2) sum_n (x_n . beta(params) - y_n)^2 (sum convention)."""
    X = jnp.asarray(finite_array("X", X, ndim=2), float)
    y = jnp.asarray(finite_array("y", y, ndim=1), float)
    if X.shape[0] != y.shape[0]:
        raise InputError(f"X has {X.shape[0]} rows but y has {y.shape[0]} targets")
    return _Regression(network, X, y)


class _Regression(eqx.Module):
    network: AbstractLinearNetwork
    X: jax.Array
    y: jax.Array

    def __call__(self, params):
        residual = self.X @ self.network.predictor(params) - self.y
        return 0.5 * jnp.sum(residual**2)
