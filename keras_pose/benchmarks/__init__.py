"""Benchmarks that print figures for the docs (run through ``tools/benchmark_*.py``)."""
