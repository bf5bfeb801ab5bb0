"""Cost of curvature products as multiples of one gradient, on the CURVES autoencoder.

For each batch size: the median time of one gradient, and of each product
(Hessian-vector: forward-over-reverse, reverse-over-reverse, cached; Gauss-Newton:
uncached, cached), divided by the gradient time measured in the same process.
Cached products reuse one linearisation at a fixed theta, as inside a CG solve;
the one-off cost of building it is reported separately. Also the dense Hessian's
assembly time and peak memory against N on small nets, with fitted exponents.
"""

import time
import tracemalloc

import numpy as np
from tqdm.auto import tqdm

from mininn import MLP, Problem, data

from .common import median_seconds, print_table, write_results

#: The deep autoencoder of Hinton & Salakhutdinov (2006) for CURVES.
AUTOENCODER_SIZES = [784, 400, 200, 100, 50, 25, 6, 25, 50, 100, 200, 400, 784]

#: Targets for each product, as product time / gradient time (the cached products are the inner loop of CG).
TARGETS = {"ggn_cached": 1.2, "hvp_cached": 1.4, "ggn": 1.6, "hvp_fwd_rev": 2.5}


def autoencoder_problem(batch, sizes=AUTOENCODER_SIZES, seed=0):
    """The CURVES autoencoder on ``batch`` images, sigmoid cross-entropy, and a He-initialised theta."""
    side = int(round(np.sqrt(sizes[0])))
    images = data.curves(batch, seed=seed, size=side)
    model = MLP(sizes, activation="relu", output="identity", init="he")
    return Problem(model, "sigmoid_cross_entropy", images, images), model.init(seed)


def product_ratios(problem, theta, repeats, seed=0):
    """One row of the results table: gradient seconds and each product's time ratio."""
    v = np.random.default_rng(seed).normal(size=problem.num_params)
    grad_s = median_seconds(lambda: problem.grad(theta), repeats)
    hvp_cached = problem.hvp_operator(theta)
    ggn_cached = problem.ggn_operator(theta)
    timings = {
        "hvp_fwd_rev": lambda: problem.hvp(theta, v, method="fwd_rev"),
        "hvp_rev_rev": lambda: problem.hvp(theta, v, method="rev_rev"),
        "hvp_cached": lambda: hvp_cached(v),
        "ggn": lambda: problem.ggn_vp(theta, v),
        "ggn_cached": lambda: ggn_cached(v),
        "hvp_cached_build": lambda: problem.hvp_operator(theta),
        "ggn_cached_build": lambda: problem.ggn_operator(theta),
    }
    row = {"grad_s": grad_s}
    for name, function in timings.items():
        row[name] = median_seconds(function, repeats) / grad_s
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


def run(quick=False, output_dir=None):
    batches = [20] if quick else [100, 1000]
    sizes = [64, 32, 16, 8, 4, 8, 16, 32, 64] if quick else AUTOENCODER_SIZES
    repeats = 2 if quick else 7
    rows = []
    for batch in tqdm(batches, desc="curvature products"):
        problem, theta = autoencoder_problem(batch, sizes)
        row = {"batch": batch, "activation": "relu", "num_params": problem.num_params}
        row.update(product_ratios(problem, theta, repeats))
        rows.append(row)
    print_table(rows, ["batch", "num_params", "grad_s", "hvp_fwd_rev", "hvp_rev_rev", "hvp_cached",
                       "ggn", "ggn_cached", "hvp_cached_build", "ggn_cached_build"])
    for key, target in TARGETS.items():
        worst = max(row[key] for row in rows)
        print(f"{key}: worst ratio {worst:.2f} (target <= {target})")

    widths = [4, 8] if quick else [8, 16, 24, 32, 48, 64]
    scaling = dense_hessian_scaling(widths)
    N = [r["N"] for r in scaling]
    exponents = {"time": fitted_exponent(N, [r["seconds"] for r in scaling]),
                 "memory": fitted_exponent(N, [r["peak_bytes"] for r in scaling])}
    print_table(scaling, ["N", "seconds", "peak_bytes", "matrix_bytes"])
    print(f"dense Hessian: time ~ N^{exponents['time']:.2f}, peak memory ~ N^{exponents['memory']:.2f}")
    payload = {"rows": rows, "dense_hessian": scaling, "dense_exponents": exponents,
               "targets": TARGETS, "quick": quick}
    name = "curvature_quick" if quick else "curvature"
    kwargs = {} if output_dir is None else {"output_dir": output_dir}
    for path in write_results(name, payload, "rows", **kwargs):
        print(f"wrote {path}")
    return payload
