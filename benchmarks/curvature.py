"""Cost of curvature products as multiples of one gradient, on the CURVES autoencoder.

For each batch size, three implementations of the same products, timed alternately in
one process (each repetition calls every product once; medians over the repetitions):

- the generic autograd path of :class:`~mininn.problem.Problem`: the median time of one
  gradient (``grad_s``) and each product's time divided by it (Hessian-vector:
  forward-over-reverse, reverse-over-reverse, cached; Gauss-Newton: uncached, cached);
- the fast MLP path of :mod:`mininn.curvature.mlp_passes` (``fast_*``): a gradient is one forward
  and one backward pass, each product starts from theta (forward pass included), and each
  ratio divides by the fast gradient's time;
- the JAX peer (``jax_*``, jit, float64; optional, see benchmarks/requirements-peer.txt):
  JAX's own ratios, and ``vs_jax_*``, the fast path's time divided by JAX's for the same
  product. Without JAX these columns are None and the run says why.

Cached products reuse what depends on theta alone, as inside a CG solve; the one-off cost
of building the operator is reported separately (``*_cached_build``). Also the dense
Hessian's assembly time and peak memory against N on small nets, with fitted exponents.
"""

import os
import time
import tracemalloc

import numpy as np
from tqdm.auto import tqdm

from mininn import MLP, Problem, data
from mininn.curvature import mlp_passes as passes

from . import jax_peer
from .common import print_table, write_results

#: The deep autoencoder of Hinton & Salakhutdinov (2006) for CURVES.
AUTOENCODER_SIZES = [784, 400, 200, 100, 50, 25, 6, 25, 50, 100, 200, 400, 784]

#: Targets of the autograd path, as product time / gradient time (the cached products are the inner
#: loop of CG).
TARGETS = {"ggn_cached": 1.2, "hvp_cached": 1.4, "ggn": 1.6, "hvp_fwd_rev": 2.5}

#: Targets of the fast-path issue (product time / the fast path's gradient time).
FAST_TARGETS = {"ggn_cached": 1.0, "ggn": 1.3, "hvp": 1.6, "hvp_cached": 1.1,
                "ggn_cached_build": 0.5, "hvp_cached_build": 0.5}

#: Target for every product: the fast path's time at most this multiple of JAX-jit's.
PEER_TARGET = 1.2

#: The products every implementation times (autograd's Hessian product has two methods).
PRODUCTS = ("hvp", "hvp_cached", "hvp_cached_build", "ggn", "ggn_cached", "ggn_cached_build")


def autoencoder_problem(batch, sizes=AUTOENCODER_SIZES, seed=0):
    """The CURVES autoencoder on ``batch`` images, sigmoid cross-entropy, and a He-initialised theta."""
    side = int(round(np.sqrt(sizes[0])))
    images = data.curves(batch, seed=seed, size=side)
    model = MLP(sizes, activation="relu", output="identity", init="he")
    return Problem(model, "sigmoid_cross_entropy", images, images, fast_path=False), model.init(seed)


def autograd_products(problem, theta, v):
    """Name -> a no-argument call of the generic path (gradient and products)."""
    hvp_cached, ggn_cached = problem.hvp_operator(theta), problem.ggn_operator(theta)
    return {
        "grad": lambda: problem.grad(theta),
        "hvp_fwd_rev": lambda: problem.hvp(theta, v, method="fwd_rev"),
        "hvp_rev_rev": lambda: problem.hvp(theta, v, method="rev_rev"),
        "hvp_cached": lambda: hvp_cached(v),
        "hvp_cached_build": lambda: problem.hvp_operator(theta),
        "ggn": lambda: problem.ggn_vp(theta, v),
        "ggn_cached": lambda: ggn_cached(v),
        "ggn_cached_build": lambda: problem.ggn_operator(theta),
    }


def fast_products(problem, theta, v):
    """Name -> a no-argument call of the fast MLP path, each starting from theta."""
    model, loss, X, Y, l2 = problem.model, problem.loss, problem.X, problem.Y, problem.l2
    trace = passes.forward(model, theta, X)
    hvp_cached = passes.hessian_vector_operator(trace, loss, Y, l2)
    ggn_cached = passes.gauss_newton_operator(trace, loss, Y, l2)
    return {
        "grad": lambda: passes.gradient(passes.forward(model, theta, X), loss, Y, l2),
        "forward": lambda: passes.forward(model, theta, X),
        "hvp": lambda: passes.hessian_vector_product(passes.forward(model, theta, X), loss, Y, v, l2),
        "hvp_cached": lambda: hvp_cached(v),
        "hvp_cached_build": lambda: passes.hessian_vector_operator(
            passes.forward(model, theta, X), loss, Y, l2),
        "ggn": lambda: passes.gauss_newton_vector_product(passes.forward(model, theta, X), loss, Y, v, l2),
        "ggn_cached": lambda: ggn_cached(v),
        "ggn_cached_build": lambda: passes.gauss_newton_operator(
            passes.forward(model, theta, X), loss, Y, l2),
    }


def alternating_medians(functions, repeats, warmup=1, clock=time.perf_counter):
    """Median time of each function, calling all of them in turn in every repetition, so that a
    change of the machine's load hits every function alike. ``clock`` is wall time by default;
    ``time.process_time`` (CPU time of the process) is steadier on a shared machine when
    everything runs on one thread."""
    for _ in range(warmup):
        for function in functions.values():
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = clock()
            function()
            times[name].append(clock() - start)
    return {name: float(np.median(seconds)) for name, seconds in times.items()}


def product_ratios(problem, theta, repeats, peer=None, seed=0, clock=time.perf_counter):
    """One row of the results table: each path's gradient seconds and its products' time ratios
    (``peer``: JaxProducts or None; ``clock``: as in :func:`alternating_medians`)."""
    v = np.random.default_rng(seed).normal(size=problem.num_params)
    functions = {f"autograd_{name}": f for name, f in autograd_products(problem, theta, v).items()}
    functions.update({f"fast_{name}": f for name, f in fast_products(problem, theta, v).items()})
    if peer is not None:
        functions.update({f"jax_{name}": f for name, f in peer(problem).timed(theta, v).items()})
    seconds = alternating_medians(functions, repeats, clock=clock)
    grad_s, fast_s = seconds["autograd_grad"], seconds["fast_grad"]
    row = {"grad_s": grad_s}
    row.update({name: seconds[f"autograd_{name}"] / grad_s
                for name in ("hvp_fwd_rev", "hvp_rev_rev", *PRODUCTS) if name != "hvp"})
    row.update({"fast_grad_s": fast_s, "fast_grad_speedup": grad_s / fast_s,
                "fast_forward": seconds["fast_forward"] / fast_s})
    row.update({f"fast_{name}": seconds[f"fast_{name}"] / fast_s for name in PRODUCTS})
    jax_s = seconds.get("jax_grad")
    row["jax_grad_s"] = jax_s
    for name in PRODUCTS:
        row[f"jax_{name}"] = None if jax_s is None else seconds[f"jax_{name}"] / jax_s
    for name in ("grad", *PRODUCTS):
        row[f"vs_jax_{name}"] = None if jax_s is None else seconds[f"fast_{name}"] / seconds[f"jax_{name}"]
    return row


def dense_hessian_scaling(widths, n=64, seed=0):
    """Assembly time and peak traced memory of the dense Hessian for [4, w, w, 1] ReLU nets."""
    rows = []
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(n, 4)), rng.normal(size=(n, 1))
    for width in widths:
        model = MLP([4, width, width, 1])
        problem = Problem(model, "mse", X, Y, dense_limit=10**5)
        theta = model.init(seed)
        tracemalloc.start()
        start = time.perf_counter()
        problem.hessian(theta)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append({"N": model.num_params, "seconds": seconds, "peak_bytes": peak,
                     "matrix_bytes": 8 * model.num_params**2})
    return rows


def fitted_exponent(sizes, values):
    """Slope of log(values) against log(sizes): the exponent p in values ~ sizes^p."""
    return float(np.polyfit(np.log(sizes), np.log(values), 1)[0])


def report_targets(rows, peer_available):
    """Print the worst ratio over the batches against each target."""
    for key, target in TARGETS.items():
        print(f"autograd {key}: worst ratio {max(row[key] for row in rows):.2f} (target <= {target})")
    for key, target in FAST_TARGETS.items():
        worst = max(row[f"fast_{key}"] for row in rows)
        print(f"fast {key}: worst ratio {worst:.2f} (target <= {target})")
    if peer_available:
        worst = max(row[f"vs_jax_{name}"] for row in rows for name in ("grad", *PRODUCTS))
        print(f"fast / JAX-jit: worst time ratio {worst:.2f} (target <= {PEER_TARGET})")


def run(quick=False, output_dir=None):
    batches = [20] if quick else [100, 1000]
    sizes = [64, 32, 16, 8, 4, 8, 16, 32, 64] if quick else AUTOENCODER_SIZES
    repeats = 2 if quick else 7
    peer = jax_peer.JaxProducts if jax_peer.load() else None
    load_start = os.getloadavg()
    rows = []
    for batch in tqdm(batches, desc="curvature products"):
        problem, theta = autoencoder_problem(batch, sizes)
        row = {"batch": batch, "activation": "relu", "num_params": problem.num_params}
        row.update(product_ratios(problem, theta, repeats, peer))
        rows.append(row)
    load_end = os.getloadavg()
    print("autograd path (product time / its gradient time):")
    print_table(rows, ["batch", "num_params", "grad_s", "hvp_fwd_rev", "hvp_rev_rev", "hvp_cached",
                       "ggn", "ggn_cached", "hvp_cached_build", "ggn_cached_build"])
    print("fast MLP path (product time / its gradient time; speedup: autograd gradient / fast gradient):")
    print_table(rows, ["batch", "fast_grad_s", "fast_grad_speedup", "fast_forward",
                       *(f"fast_{name}" for name in PRODUCTS)])
    if peer is None:
        print(f"JAX peer column unavailable: {jax_peer.load.reason}")
    else:
        print("JAX-jit peer (product time / JAX gradient time):")
        print_table(rows, ["batch", "jax_grad_s", *(f"jax_{name}" for name in PRODUCTS)])
        print("fast path time / JAX-jit time, same product:")
        print_table(rows, ["batch", *(f"vs_jax_{name}" for name in ("grad", *PRODUCTS))])
    report_targets(rows, peer is not None)

    widths = [4, 8] if quick else [8, 16, 24, 32, 48, 64]
    scaling = dense_hessian_scaling(widths)
    N = [r["N"] for r in scaling]
    exponents = {"time": fitted_exponent(N, [r["seconds"] for r in scaling]),
                 "memory": fitted_exponent(N, [r["peak_bytes"] for r in scaling])}
    print_table(scaling, ["N", "seconds", "peak_bytes", "matrix_bytes"])
    print(f"dense Hessian: time ~ N^{exponents['time']:.2f}, peak memory ~ N^{exponents['memory']:.2f}")
    payload = {"rows": rows, "dense_hessian": scaling, "dense_exponents": exponents,
               "targets": TARGETS, "fast_targets": FAST_TARGETS, "peer_target": PEER_TARGET,
               "peer": {"name": "jax", "available": peer is not None, "reason": jax_peer.load.reason,
                        "version": jax_peer.version()},
               "threads": os.environ.get("OMP_NUM_THREADS"), "repeats": repeats,
               "load_average": {"start": load_start[0], "end": load_end[0]}, "quick": quick}
    write_results("curvature", payload, "rows", output_dir, quick)
    return payload
