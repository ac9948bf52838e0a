"""Multi-class (Crammer-Singer) hard-margin SVM through the origin, exact (host-side NumPy/SciPy, float64).

    W_hat = argmin_W sum_k ||w_k||^2   s.t.   (w_{y_n} - w_k).x_n >= 1   for all n and k != y_n.

Kesler construction (docs/stability-sam-geometry.md section 5): each constraint is <W, x_n (e_{y_n} - e_k)^T> >= 1, a
binary margin constraint through the origin on the lifted point z_{n,k} = vec(x_n (e_{y_n} - e_k)^T) in R^{Kd}
(row-major vec, W.reshape(-1)), and sum_k ||w_k||^2 = ||vec W||^2. So the problem IS the binary l2 max margin of the
N(K-1) lifted points, solved exactly by `max_margin` (NNLS dual + active-set polishing), with its dual, support and
Farkas certificate. Soudry et al. (2018, JMLR, section on multi-class) show GD on softmax cross-entropy converges in
direction to W_hat; Ravi, Scott, Soudry & Wang (NeurIPS 2024) extend it to general multiclass losses.
"""

import dataclasses

import numpy as np

from ..errors import NonSeparableError
from ..models.multiclass import multiclass_data, other_classes
from .max_margin import MaxMarginSolution, max_margin


def kesler_lift(X, y):
    """The lifted points and their (n, k) labels: Z of shape (N(K-1), K d) with rows z_{n,k} = vec(x_n (e_{y_n} -
    e_k)^T), n-major and k increasing over k != y_n; pairs (N(K-1), 2) int. Labels are checked (`InputError`)."""
    X, y, K = multiclass_data(X, y)
    N, d = X.shape
    others = other_classes(y, K)
    pairs = np.stack([np.repeat(np.arange(N), K - 1), others.reshape(-1)], axis=1)
    E = np.zeros((len(pairs), K))
    E[np.arange(len(pairs)), y[pairs[:, 0]]] = 1.0
    E[np.arange(len(pairs)), pairs[:, 1]] = -1.0
    Z = (E[:, :, None] * X[pairs[:, 0]][:, None, :]).reshape(len(pairs), K * d)
    return Z, pairs


@dataclasses.dataclass(frozen=True)
class MulticlassMaxMarginSolution:
    """The multi-class hard-margin SVM.

    W: (K, d) min-Frobenius-norm W with (w_{y_n} - w_k).x_n >= 1. support: (m, 2) int pairs (n, k) with
    (w_{y_n} - w_k).x_n = 1. dual: (N, K) alpha_{n,k} >= 0 (zero at k = y_n and off the support) with
    W = sum alpha_{n,k} (e_{y_n} - e_k) x_n^T and sum alpha = ||W||_F^2. margin: 1/||W||_F. gap: the smallest
    non-support relative margin (inf if none). lifted: the binary `MaxMarginSolution` on `kesler_lift` (its
    ``w`` is W.reshape(-1)); degenerate / spans_data are those of the lifted problem.
    """

    W: np.ndarray
    support: np.ndarray
    dual: np.ndarray
    margin: float
    gap: float
    lifted: MaxMarginSolution

    @property
    def degenerate(self):
        return self.lifted.degenerate

    @property
    def spans_data(self):
        return self.lifted.spans_data

    @property
    def direction(self):
        return self.W / np.linalg.norm(self.W)


def multiclass_max_margin(X, y):
    """Exact multi-class hard-margin SVM (no bias) of K-class data, labels integers 0..K-1 with every class present.

    Solved as the binary max margin of the Kesler-lifted points (`kesler_lift`, `max_margin`): exact to machine
    precision, cost that of `max_margin` on N(K-1) points in R^{Kd}. sum_k w_hat_k = 0 (every lifted point has zero
    class-sum). Raises `InputError` on bad labels and `NonSeparableError` when no W separates: its ``certificate``
    a >= 0, sum a = 1 (length N(K-1), `kesler_lift` row order) has sum a_{n,k} x_n (e_{y_n} - e_k)^T = 0 (verified).
    """
    X, y, K = multiclass_data(X, y)
    N, d = X.shape
    Z, pairs = kesler_lift(X, y)
    try:
        lifted = max_margin(Z, np.ones(len(Z)))
    except NonSeparableError as error:
        a = error.certificate
        top = np.argsort(-a)[:5]
        raise NonSeparableError(
            f"the {K}-class data is not linearly separable through the origin: no W has (w_{{y_n}} - w_k).x_n > 0 for "
            f"all n and k != y_n. Certificate (verified): weights a = {np.round(a[top], 6).tolist()} on the "
            f"constraints (n, k) = {pairs[top].tolist()} with sum_(n,k) a_(n,k) x_n (e_(y_n) - e_k)^T = 0 (rows of "
            "kesler_lift(X, y)). With class biases, append a column of ones to X.", certificate=a) from None
    dual = np.zeros((N, K))
    dual[pairs[:, 0], pairs[:, 1]] = lifted.dual
    return MulticlassMaxMarginSolution(W=lifted.w.reshape(K, d), support=pairs[lifted.support], dual=dual,
                                       margin=lifted.margin, gap=lifted.gap, lifted=lifted)
