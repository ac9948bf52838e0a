"""Multi-class linear classifiers: softmax cross-entropy on K classes (docs/stability-sam-geometry.md section 5).

Parameters W of shape (K, d), class scores F = X W^T. For example n with label y_n the K - 1 *relative margins*

    q_{n,k} = (w_{y_n} - w_k).x_n = <W, x_n (e_{y_n} - e_k)^T>,   k != y_n,

are linear in W: they are the binary margins of the Kesler-lifted points z_{n,k} = vec(x_n (e_{y_n} - e_k)^T) in R^{Kd}
(row-major vec, matching W.reshape(-1)). Softmax cross-entropy is

    l_n(W) = -log softmax(F_n)_{y_n} = log(1 + sum_{k != y_n} exp(-q_{n,k})),

summed (reduction="sum", the papers' convention) or averaged over n. Its gradient rows sum to zero over the classes
(d l_n / d w_k = (p_{n,k} - 1[k = y_n]) x_n), so GD and GF conserve sum_k w_k exactly (up to rounding).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from ..errors import InputError
from ..validation import finite_array
from .losses import _log_softplus, check_reduction


def multiclass_data(X, y):
    """Check a K-class data set and return (X float64 (N, d), y int64 (N,), K).

    Labels must be integers 0..K-1 (integer dtype, or floats with integral values), every class present, K >= 2.
    Raises `InputError` naming the problem otherwise."""
    X = finite_array("X", X, ndim=2).astype(np.float64)
    raw = np.asarray(y)
    if raw.dtype == bool or not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise InputError(f"multi-class labels must be integers 0..K-1, got dtype {raw.dtype}")
    y = finite_array("y", raw, ndim=1)
    if y.shape[0] != X.shape[0]:
        raise InputError(f"X has {X.shape[0]} rows but y has {y.shape[0]} labels")
    if X.shape[0] == 0:
        raise InputError("the data set is empty")
    bad = (y != np.round(y)) | (y < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"multi-class labels must be integers 0..K-1; y[{i}] = {y[i]!r} ({int(bad.sum())} bad labels)")
    y = y.astype(np.int64)
    K = int(y.max()) + 1
    if K < 2:
        raise InputError("multi-class data needs at least two classes (labels 0..K-1 with K >= 2); got only class 0")
    counts = np.bincount(y, minlength=K)
    if not counts.all():
        missing = np.flatnonzero(counts == 0).tolist()
        raise InputError(f"labels run 0..{K - 1} but classes {missing} have no examples: relabel the classes present "
                         "as 0..K-1 (e.g. y = np.unique(y, return_inverse=True)[1])")
    return X, y, K


def other_classes(y, K):
    """(N, K - 1) int array: row n lists the classes k != y_n in increasing order (the order of the lifted points)."""
    all_classes = np.broadcast_to(np.arange(K), (len(y), K))
    return all_classes[all_classes != np.asarray(y)[:, None]].reshape(len(y), K - 1)


class SoftmaxCrossEntropy(eqx.Module):
    """L(W) = reduce_n log(1 + sum_{k != y_n} exp(-q_{n,k}(W))), W of shape (K, d); see the module docstring.

    Interface of `MarginLoss` for the processes: ``__call__``, ``log_value`` (log L, finite after L underflows),
    ``descent_direction(W, log_scale)`` (-e^s grad L with s inside each weight's exponent, so log-time flows never
    multiply an overflowing factor by an underflowing gradient), ``num_examples``, ``subset`` (SGD, m-SAM),
    ``margins`` (N, K-1). Cost: O(N K d) per evaluation.
    """

    X: jax.Array
    labels: jax.Array
    others: jax.Array
    num_classes: int = eqx.field(static=True)
    reduction: str = eqx.field(static=True, default="sum")

    def __check_init__(self):
        check_reduction(self.reduction)

    @property
    def num_examples(self):
        return self.X.shape[0]

    def margins(self, W):
        """q_{n,j} = (w_{y_n} - w_{k_j}).x_n for the K - 1 classes k_j != y_n (`other_classes` order), (N, K-1)."""
        F = self.X @ W.T
        own = jnp.take_along_axis(F, self.labels[:, None], axis=1)
        return own - jnp.take_along_axis(F, self.others, axis=1)

    def _log_count(self):
        return jnp.log(self.num_examples) if self.reduction == "mean" else 0.0

    def _log_s(self, W):
        """log s_n = log sum_{k != y_n} exp(-q_{n,k}) and the margins q."""
        q = self.margins(W)
        return logsumexp(-q, axis=1), q

    def per_example(self, W):
        """l_n(W) = softplus(log s_n), (N,)."""
        return jax.nn.softplus(self._log_s(W)[0])

    def __call__(self, W):
        values = self.per_example(W)
        return jnp.mean(values) if self.reduction == "mean" else jnp.sum(values)

    def log_value(self, W):
        """log L = logsumexp_n log log(1 + s_n) (- log N)."""
        return logsumexp(_log_softplus(self._log_s(W)[0])) - self._log_count()

    def descent_direction(self, W, log_scale=None):
        """-exp(log_scale) grad L: sum_{n,k} c_{n,k} x_n (e_{y_n} - e_k)^T with
        c_{n,k} = exp(log_scale - q_{n,k} - softplus(log s_n)) (/N for a mean loss)."""
        log_s, q = self._log_s(W)
        s = 0.0 if log_scale is None else log_scale
        c = jnp.exp(s - q - jax.nn.softplus(log_s)[:, None] - self._log_count())
        own = jnp.zeros((self.num_examples, self.num_classes), c.dtype)
        own = own.at[jnp.arange(self.num_examples), self.labels].set(c.sum(axis=1))
        weights = own.at[jnp.arange(self.num_examples)[:, None], self.others].add(-c)
        return (weights.T @ self.X).astype(W.dtype)

    def probabilities(self, W):
        """softmax(X W^T), (N, K)."""
        return jax.nn.softmax(self.X @ W.T, axis=1)

    def subset(self, index):
        """The same loss on the examples ``index`` (reduction applied over the subset)."""
        return SoftmaxCrossEntropy(self.X[index], self.labels[index], self.others[index], self.num_classes,
                                   self.reduction)


def softmax_classifier(X, y, reduction="sum"):
    """Softmax cross-entropy linear classifier on K-class data: a loss of W (K, d), labels y integers 0..K-1 with every
    class present (`InputError` otherwise). Returns a `SoftmaxCrossEntropy` usable by every process (GD, GF in log
    time, SGD, ...). Its max-margin prediction is `dynamics.multiclass_max_margin(X, y)`."""
    X, y, K = multiclass_data(X, y)
    return SoftmaxCrossEntropy(jnp.asarray(X), jnp.asarray(y, jnp.int32), jnp.asarray(other_classes(y, K), jnp.int32),
                               K, reduction)
