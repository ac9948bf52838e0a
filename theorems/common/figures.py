"""Figure helpers: one title style, mathtext labels, labelled line bundles (a colour bar or a legend for seeds,
scales or coordinates), and log axes set in one call."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

#: mathtext labels used across theorems.
LABELS = {
    "t": r"$t$", "tau": r"$\tau = \log(1 + t)$", "k": r"step $k$", "eta_lambda": r"$\eta\,\lambda_1$",
    "direction_error": r"$\|w/\|w\| - \hat w/\|\hat w\|\|$", "residual": r"$\|w - \hat w \log t\|$",
    "loss": r"$L(\theta)$", "sharpness": r"$\lambda_{\max}(\nabla^2 L)$", "h": r"step size $h$",
    "error": r"error", "r_stat": r"$r_{\mathrm{stat}}$",
}


def panels(theorem, n, *, width=4.2, height=3.4, title=None):
    """(fig, axes): ``n`` panels in one row, titled "<id>: <title or first sentence of the statement>"."""
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    headline = title or theorem.statement.split(". ")[0]
    fig.suptitle(f"{theorem.id}: {headline}", fontsize=10)
    return fig, list(axes[0])


def axes_style(ax, xlabel=None, ylabel=None, *, logx=False, logy=False, title=None):
    """Labels (keys of `LABELS` or any mathtext), log scales, grid and a small title."""
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if xlabel:
        ax.set_xlabel(LABELS.get(xlabel, xlabel))
    if ylabel:
        ax.set_ylabel(LABELS.get(ylabel, ylabel))
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    return ax


def bundle(ax, x, Y, values, label, *, cmap="viridis", colorbar=True, **line):
    """Lines Y[:, i] against x coloured by ``values[i]`` (seeds, scales, coordinates), explained by a colour bar
    titled ``label`` (or, with colorbar=False, a legend "label = value")."""
    Y = np.asarray(Y)
    values = np.asarray(values, float)
    norm = matplotlib.colors.Normalize(values.min(), values.max() if values.max() > values.min() else values.min() + 1)
    colours = plt.get_cmap(cmap)(norm(values))
    for i, c in enumerate(colours):
        ax.plot(x, Y[:, i], color=c, label=None if colorbar else f"{label} = {values[i]:g}", **line)
    if colorbar:
        bar = ax.figure.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax)
        bar.set_label(LABELS.get(label, label))
    else:
        ax.legend(fontsize=7)
    return ax


def reference_line(ax, y=None, x=None, label=None, **style):
    """A dashed horizontal (y) or vertical (x) reference, e.g. the prediction or a threshold such as 2/eta."""
    style = {"color": "k", "linestyle": "--", "linewidth": 0.9, **style}
    (ax.axhline(y, label=label, **style) if y is not None else ax.axvline(x, label=label, **style))
    return ax
