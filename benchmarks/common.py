"""Shared benchmark helpers: median timings, XLA compile accounting, data sets, tables.

Timings are wall-clock seconds (``time.perf_counter``) of calls whose results are blocked on
(``jax.block_until_ready``); compile time is read from JAX's own monitoring events, so a warm
call can be checked to have hit the JIT cache (zero backend compiles).
"""

import dataclasses
import statistics
import time

import jax
import numpy as np

#: JAX monitoring event recorded once per XLA backend compilation (jax._src.dispatch).
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileLog:
    """Counts XLA backend compilations and their seconds, via a jax.monitoring listener."""

    def __init__(self):
        self.count = 0
        self.seconds = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event, duration, **kwargs):
        if event == BACKEND_COMPILE_EVENT:
            self.count += 1
            self.seconds += duration

    def snapshot(self):
        return self.count, self.seconds


COMPILES = CompileLog()


@dataclasses.dataclass(frozen=True)
class Timing:
    """first_s: first call (trace + compile + run); runs_s: warm repeats; compile_s, compiles: XLA
    backend compile seconds/count during the first call; warm_compiles: compiles during the repeats
    (0 when every warm call hit the JIT cache)."""

    first_s: float
    runs_s: tuple
    compile_s: float
    compiles: int
    warm_compiles: int

    @property
    def median_s(self):
        return statistics.median(self.runs_s)


def timed_call(fn):
    """(seconds, XLA compiles, compile seconds, result) of one blocked call."""
    count0, seconds0 = COMPILES.snapshot()
    start = time.perf_counter()
    result = jax.block_until_ready(fn())
    elapsed = time.perf_counter() - start
    count1, seconds1 = COMPILES.snapshot()
    return elapsed, count1 - count0, seconds1 - seconds0, result


def time_calls(fns, repeats=3):
    """Time each ``fns[name]()`` once cold, then in ``repeats`` interleaved warm rounds.

    Interleaving (round r calls every method once) spreads load drift on a shared machine over all
    methods alike, so ratios of medians are steadier than the medians. ``repeats``: an int or a
    dict name -> int. Returns ({name: Timing}, {name: result of its last call}).
    """
    counts = repeats if isinstance(repeats, dict) else dict.fromkeys(fns, repeats)
    first, results, runs, warm = {}, {}, {name: [] for name in fns}, dict.fromkeys(fns, 0)
    for name, fn in fns.items():
        first[name] = timed_call(fn)
        results[name] = first[name][3]
    for r in range(max(counts.values())):
        for name, fn in fns.items():
            if r < counts[name]:
                elapsed, compiles, _, results[name] = timed_call(fn)
                runs[name].append(elapsed)
                warm[name] += compiles
    timings = {name: Timing(first[name][0], tuple(runs[name]), first[name][2], first[name][1], warm[name])
               for name in fns}
    return timings, results


def separable_gaussian(seed, n, d):
    """X ~ N(0, I_d) (n rows), labels y = sign(X w*) for a Gaussian w*: separable through 0."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.where(X @ rng.normal(size=d) >= 0, 1.0, -1.0)
    return X, y


def table(headers, rows):
    """Plain-text table: columns right-aligned except the first."""
    cells = [list(headers)] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), rule] + [fmt(row) for row in cells[1:]])


def si(x, digits=3):
    """1234567 -> '1.23M' (k, M, G)."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.{digits}g}{suffix}"
    return f"{x:.{digits}g}"
