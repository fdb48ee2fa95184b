"""Benchmarks: ``python -m bench.run`` (``make bench``) runs them all and writes bench/results/."""
