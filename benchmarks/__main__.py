"""Command line: ``python -m benchmarks {book,curvature,optimizers,mnist1d-reproduction} [--quick]
[--output DIR]``.

``optimizers`` also takes ``--budget SECONDS`` (per run), ``--seeds K`` and
``--problem mnist1d|curves|all``; ``mnist1d-reproduction`` also takes ``--seeds K``.
``--threads N`` sets the number of BLAS threads (default: the library's own for book and
curvature, 1 for optimizers and mnist1d-reproduction).
"""

import argparse
import importlib
import os
import sys

BENCHMARKS = ("book", "curvature", "optimizers", "mnist1d-reproduction")

#: Environment variables read by the BLAS libraries numpy may use, when they load.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=BENCHMARKS, help="which benchmark to run")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (seconds)")
    parser.add_argument("--output", default=None, help="results folder (default benchmarks/results)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="BLAS threads (default: the library's for book and curvature, 1 for "
                             "optimizers and mnist1d-reproduction: on a shared machine multithreaded "
                             "BLAS makes the small products of minibatch steps erratic)")
    parser.add_argument("--seeds", type=int, default=None, metavar="K",
                        help="optimizers and mnist1d-reproduction: runs per method or variant, seeds "
                             "0..K-1 (default 3 and 5; 1 with --quick)")
    group = parser.add_argument_group("optimizers only")
    group.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                       help="wall time per run (default 20 s for mnist1d, 30 s for curves)")
    group.add_argument("--problem", choices=["mnist1d", "curves", "all"], default="all",
                       help="which problem (default all)")
    args = parser.parse_args(argv)
    kwargs = {"quick": args.quick, "output_dir": args.output}
    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.name == "optimizers":
        if args.budget is not None and not args.budget > 0:
            parser.error("--budget must be positive")
        kwargs.update(budget=args.budget, seeds=args.seeds, problem=args.problem)
    elif args.name == "mnist1d-reproduction":
        if args.budget is not None or args.problem != "all":
            parser.error("--budget and --problem apply to the optimizers benchmark only")
        kwargs.update(seeds=args.seeds)
    elif args.budget is not None or args.seeds is not None or args.problem != "all":
        parser.error("--budget, --seeds and --problem apply to the optimizers and mnist1d-reproduction "
                     "benchmarks only")
    if args.threads is None and args.name in ("optimizers", "mnist1d-reproduction"):
        args.threads = 1
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        if "numpy" in sys.modules:
            print(f"--threads {args.threads} ignored: numpy was loaded before the option was read",
                  file=sys.stderr)
        else:
            for variable in THREAD_VARIABLES:
                os.environ[variable] = str(args.threads)
    # Imported only now: the BLAS library reads the thread variables when numpy loads it.
    module = importlib.import_module(f".{args.name.replace('-', '_')}", __package__)
    module.run(**kwargs)


if __name__ == "__main__":
    main()
