"""Benchmarks and the fault soak; run with `make bench` and `make soak`."""
