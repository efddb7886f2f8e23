"""Benchmarks: ``python -m benchmarks.bench_<name>`` writes ``benchmarks/results/<name>.json``."""
