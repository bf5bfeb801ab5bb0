"""Command line: ``python -m benchmarks {curvature,book} [--quick] [--output DIR]``."""

import argparse

from . import book, curvature

BENCHMARKS = {"book": book.run, "curvature": curvature.run}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark to run")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (seconds)")
    parser.add_argument("--output", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    BENCHMARKS[args.name](quick=args.quick, output_dir=args.output)


if __name__ == "__main__":
    main()
