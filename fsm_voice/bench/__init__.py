"""Benchmarks: run on demand, print their figures."""
