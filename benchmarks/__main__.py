"""Command line: ``python -m benchmarks {book,curvature,mnist1d-reproduction,time-to-target,scaling,
kfac-relu-diagnosis} [--quick] [--output DIR]``.

``mnist1d-reproduction`` also takes ``--seeds K``; ``time-to-target`` takes ``--seeds K``,
``--workers W``, ``--workload NAME|all`` and ``--size default|full`` (the CURVES data size);
``scaling`` takes ``--seeds K``, ``--workers W`` and ``--methods A,B,...``; ``kfac-relu-diagnosis``
takes ``--workers W``. ``--threads N`` sets the number of BLAS threads (default: the library's own for
book and curvature, 1 for the others).
"""

import argparse
import importlib
import os
import sys

BENCHMARKS = ("book", "curvature", "mnist1d-reproduction", "time-to-target", "scaling", "kfac-relu-diagnosis")

#: The benchmarks that run one BLAS thread per process unless --threads says otherwise.
SINGLE_THREADED = ("mnist1d-reproduction", "time-to-target", "scaling", "kfac-relu-diagnosis")

#: Environment variables read by the BLAS libraries numpy may use, when they load.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=BENCHMARKS, help="which benchmark to run")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (seconds)")
    parser.add_argument("--output", default=None, help="results folder (default benchmarks/results)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="BLAS threads per process (default: the library's for book and curvature, "
                             "1 for the others: on a shared machine multithreaded BLAS makes the small "
                             "products of minibatch steps erratic)")
    parser.add_argument("--seeds", type=int, default=None, metavar="K",
                        help="mnist1d-reproduction, time-to-target, scaling: runs per variant or method, "
                             "seeds 0..K-1 (default 5, 3, 3; 1 with --quick)")
    parser.add_argument("--workers", type=int, default=2, metavar="W",
                        help="time-to-target, scaling and kfac-relu-diagnosis: worker processes (default 2)")
    group = parser.add_argument_group("time-to-target only")
    group.add_argument("--workload", default="all",
                       choices=["mnist1d", "curves-sigmoid", "curves-relu", "spirals", "all"],
                       help="which workload (default all)")
    group.add_argument("--size", choices=["default", "full"], default="default",
                       help="CURVES data: 2000/1000 training/test images (default) or 20000/10000")
    group = parser.add_argument_group("scaling only")
    group.add_argument("--methods", default=None, metavar="A,B,...",
                       help="comma-separated subset of SGD-momentum,Adam,K-FAC,Shampoo,Hessian-free "
                            "(the default), or K-FAC-no-momentum (an ablation)")
    args = parser.parse_args(argv)
    kwargs = {"quick": args.quick, "output_dir": args.output}
    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.name == "mnist1d-reproduction":
        kwargs.update(seeds=args.seeds)
    elif args.name in ("time-to-target", "scaling"):
        if args.workers < 1:
            parser.error("--workers must be at least 1")
        kwargs.update(seeds=args.seeds, workers=args.workers)
        if args.name == "time-to-target":
            kwargs.update(workload=args.workload, size=args.size)
        else:
            kwargs.update(methods=_methods(parser, args.methods))
    elif args.seeds is not None:
        parser.error("--seeds applies to the mnist1d-reproduction, time-to-target and scaling benchmarks")
    elif args.name == "kfac-relu-diagnosis":
        kwargs.update(workers=args.workers)
    if args.name != "time-to-target" and (args.workload != "all" or args.size != "default"):
        parser.error("--workload and --size apply to the time-to-target benchmark only")
    if args.name != "scaling" and args.methods is not None:
        parser.error("--methods applies to the scaling benchmark only")
    if args.threads is None and args.name in SINGLE_THREADED:
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


def _methods(parser, text):
    if text is None:
        return None
    known = ("SGD-momentum", "Adam", "K-FAC", "Shampoo", "Hessian-free", "K-FAC-no-momentum")
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        parser.error(f"--methods: unknown {unknown}; choose from {', '.join(known)}")
    return names


if __name__ == "__main__":
    main()
