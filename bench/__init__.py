"""Benchmarks that print tables (figure, goal, peer). Run: `make bench` or `python -m bench NAME`."""
