"""``python -m benchmarks``: GD throughput, then GD vs log-time GF gradient counts (~95 s of CPU time on 2 cores)."""

import platform
import time

import jax

from . import gd_throughput, gf_vs_gd


def main():
    start = time.perf_counter()
    print(f"jax {jax.__version__} on {jax.default_backend()} ({jax.device_count()} device), "
          f"python {platform.python_version()}, float64 = {jax.config.jax_enable_x64}")
    gd_throughput.report()
    gf_vs_gd.report()
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
