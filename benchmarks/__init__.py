"""Benchmarks of `dynamics` (not tests: they print timings and ratios, assert nothing).

Run all: ``python -m benchmarks``; one: ``python -m benchmarks.gd_throughput`` or
``python -m benchmarks.gf_vs_gd``. See benchmarks/README.md.
"""
