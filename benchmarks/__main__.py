"""``python -m benchmarks``: GD throughput, GD vs log-time GF gradient counts, principal flow vs Euler and
the cost per field evaluation of every flow, the central flow's SDCP in JAX vs a host callback, and interactive
latency (first vs later calls, default eigensolver vs dense), and SAM steps/s through simulate vs a Python loop of a
jitted optax SAM step (see README.md for times)."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before LAPACK loads (README: eigh on shared cores)

import platform  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

from . import (central_flow_scale, central_flow_sdcp, eos_cost, gd_throughput, gf_vs_gd, interactive,  # noqa: E402
               linear_networks, principal_flow, sam, sharpness)


def main():
    start = time.perf_counter()
    print(f"jax {jax.__version__} on {jax.default_backend()} ({jax.device_count()} device), "
          f"python {platform.python_version()}, float64 = {jax.config.jax_enable_x64}, "
          f"OPENBLAS_NUM_THREADS = {os.environ['OPENBLAS_NUM_THREADS']}")
    gd_throughput.report()
    gf_vs_gd.report()
    principal_flow.report()
    linear_networks.report()
    sharpness.report()
    central_flow_sdcp.report()
    central_flow_scale.report()
    eos_cost.report()
    interactive.report()
    sam.report()
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
