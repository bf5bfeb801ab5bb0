"""Benchmarks of mininn: ``python -m benchmarks <name> [options]``; results go to benchmarks/results/."""
