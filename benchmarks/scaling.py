"""Batch-size scaling: steps to a target against batch size (Shallue et al. 2018; Zhang et al. 2019).

Workload: MNIST-1D with the 40-100-100-10 ReLU MLP (He init, no weight decay), the target a
**training loss** (the full training set's mean cross-entropy) of at most ``TARGET_LOSS``.
A training-loss target measures optimisation alone and every batch size can reach it; a
test-accuracy target would mix in generalisation, which differs between batch sizes and
methods (a full-batch method can overfit this 15,210-parameter network on 4,000 examples
before its test accuracy peaks).

For each method of ``methods.SCALING_METHODS`` and each batch size of ``BATCH_SIZES``
(powers of 2 from 32, and the full training set): its knob (learning rate; initial damping
of K-FAC and Hessian-free) on a 5-value log-spaced base grid (``Method.scaling_grid``), the
same size for every method, widened by one value beyond an edge while the best value sits
at that edge (at most ``MAX_WIDENING`` times); each value runs on seeds 0..K-1 (default 3)
to the target, ``MAX_STEPS`` steps or ``MAX_PASSES`` sequential passes; the chosen value is
the one with the fewest median steps over seeds (a miss counts as infinite). Steps count the
method's outer steps (Hessian-free's CG products are in ``sequential_passes``); they do not
depend on the machine.

Critical batch size (operational, after Shallue et al.'s regimes of perfect scaling, then
diminishing returns, then no gain): walking up the batch sizes from the smallest, the
largest batch size b reached while each step up from b' cuts the steps at least as much
as ``(b'/b)^SCALING_EXPONENT``, that is to at most 0.6 of them for a doubling (perfect
scaling halves them, 0.5). The walk starts at the smallest batch size whose runs reach the
target (a method may miss it at the smallest batches); the critical batch size is that
batch size when already its first doubling fails, and None when no batch size reaches it.

Wall time (machine-dependent, from the same runs): seconds per step of the chosen runs and
their ratio to Adam's at the same batch size, and for K-FAC and Shampoo a profile of where a
full-batch step's time goes (``step_time_breakdown``).
"""

import cProfile
import functools
import math
import os
import pstats
import time
import warnings

import numpy as np

from . import methods as methods_module
from . import workloads as workloads_module
from .common import load_average, print_table, run_jobs, write_results
from .runs import CADENCE_RULE, WORK_WEIGHTS, Target, run_to_target

TARGET_LOSS = 0.6
SIZES = [40, 100, 100, 10]
BATCH_SIZES = (32, 64, 128, 256, 512, 1024, 2048, 4000)
MAX_STEPS = 5000
#: Sequential passes of one run at most (5 per step of MAX_STEPS): the cap that binds for the
#: inner loops of Hessian-free (dozens of passes per step), machine-independent.
MAX_PASSES = 5 * MAX_STEPS
MAX_WIDENING = 2
#: A step up from b' to b keeps "near-perfect" scaling when steps(b) <= steps(b') (b'/b)^this:
#: 0.6 for a doubling.
SCALING_EXPONENT = math.log2(1 / 0.6)
#: Wall-time cap of one run (a safety net; machine-dependent when it binds).
BUDGET_S = 1800.0

QUICK = {"sizes": [40, 16, 10], "batch_sizes": (50, 400), "max_steps": 300, "target_loss": 1.5}


@functools.cache
def workload(quick=False):
    """The scaling workload: MNIST-1D, the MLP ``SIZES``, a training-loss target."""
    config = QUICK if quick else {"sizes": SIZES, "target_loss": TARGET_LOSS}
    w = workloads_module.mnist1d(quick, sizes=config["sizes"])
    w.target = Target("train_loss", config["target_loss"], "min",
                      "the issue's pilot: Adam needed 66 steps to it at full batch, today's K-FAC 18")
    return w


def single_run(quick, method_name, batch_size, value, seed):
    """One run of a method at a batch size with its knob at value; a result row."""
    w = workload(quick)
    method = methods_module.METHODS[method_name]
    full = batch_size >= w.n_train
    optimizer = method.build(value, seed, w.model, w.n_train, batch_size=min(batch_size, w.n_train))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # K-FAC's small-batch warning: the batch is the point here
        result = run_to_target(w.problem(), optimizer, w.model.init(seed), w.metric, w.target,
                               batch_size=None if full else batch_size, seed=seed,
                               max_steps=QUICK["max_steps"] if quick else MAX_STEPS,
                               max_passes=5 * QUICK["max_steps"] if quick else MAX_PASSES, budget_s=BUDGET_S)
    row = {"method": method_name, "batch_size": batch_size, "value": value, "seed": seed, **result.as_dict()}
    row["seconds_per_step"] = result.total_wall_s / max(result.total_steps, 1)
    return row


def _median_steps(runs):
    return float(np.median([r["steps"] if r["reached"] else math.inf for r in runs]))


def _widened(grid, best_index):
    """The next value beyond the edge where the best sits (log-spaced as the grid), or None."""
    if len(grid) < 2 or 0 < best_index < len(grid) - 1:
        return None
    ratio = grid[1] / grid[0]
    return float(f"{(grid[0] / ratio if best_index == 0 else grid[-1] * ratio):.3g}")


def critical_batch_size(batch_sizes, steps):
    """The largest batch size reached while each step up keeps near-perfect scaling.

    ``steps`` lists the (median) steps to the target at each batch size, None or inf for a miss.
    The walk starts at the smallest batch size that reaches the target (None if none does).
    """
    finite = [s is not None and math.isfinite(s) for s in steps]
    if not any(finite):
        return None
    first = finite.index(True)
    critical = batch_sizes[first]
    for i in range(first + 1, len(batch_sizes)):
        allowed = steps[i - 1] * (batch_sizes[i - 1] / batch_sizes[i]) ** SCALING_EXPONENT
        if not finite[i] or steps[i] > allowed:
            break
        critical = batch_sizes[i]
    return critical


def tune_cell(results, method_name, batch_size, grid, seeds):
    """(chosen value, its runs) of one (method, batch size) from the runs of ``grid``."""
    by_value = {v: [r for r in results if r["method"] == method_name and r["batch_size"] == batch_size
                    and r["value"] == v] for v in grid}
    medians = [_median_steps(by_value[v]) for v in grid]
    best = int(np.argmin(medians))
    return grid[best], by_value[grid[best]], medians


def step_time_breakdown(quick, method_name, value, steps=20):
    """Where a full-batch step's time goes: seconds per step in each part, from cProfile.

    Parts: the problem's counted evaluations by kind (``value_and_grad``, ``value``, ``ggn_vp``
    with the products of ``ggn_operator``, ``kfac_factors``), the eigendecompositions (numpy's
    ``eigh``), and the rest of the step (the preconditioning, the optimizer's own arithmetic).
    """
    w = workload(quick)
    method = methods_module.METHODS[method_name]
    optimizer = method.build(value, 0, w.model, w.n_train, batch_size=w.n_train)
    problem, theta = w.problem(), w.model.init(0)
    from mininn import fit

    fit(problem, optimizer, theta, 2)  # warm-up
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(fit, problem, optimizer, theta, steps)
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats
    parts = {"value_and_grad": 0.0, "value": 0.0, "ggn_vp": 0.0, "kfac_factors": 0.0, "eigh": 0.0}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.items():
        if filename.endswith("problem.py") and function in (*parts, "ggn_operator", "counted"):
            # an operator's products (the closure "counted") and its set-up are Gauss-Newton work
            parts["ggn_vp" if function in ("ggn_operator", "counted") else function] += cumulative
        elif function == "eigh" and "linalg" in filename:
            parts["eigh"] += cumulative
    parts = {k: v / steps for k, v in parts.items()}
    parts["rest"] = total / steps - sum(parts.values())
    return {"method": method_name, "value": value, "steps": steps, "seconds_per_step": total / steps,
            "parts": parts}


def run(quick=False, output_dir=None, seeds=None, workers=2, methods=None):
    """Run the benchmark; write scaling.{json,csv} and its figure (PNG)."""
    start = time.perf_counter()
    load_start = load_average()
    seeds = int(seeds if seeds is not None else (1 if quick else 3))
    batch_sizes = QUICK["batch_sizes"] if quick else BATCH_SIZES
    names = [m for m in (methods or methods_module.SCALING_METHODS) if methods_module.METHODS[m].available]
    grids = {(m, b): list(methods_module.METHODS[m].scaling_grid) for m in names for b in batch_sizes}
    if quick:
        grids = {key: grid[1:4:2] for key, grid in grids.items()}
    results, pending, widenings = [], dict(grids), 0 if quick else MAX_WIDENING
    while pending:
        jobs = [(quick, m, b, v, s) for (m, b), values in pending.items() for v in values
                for s in range(seeds)]
        results += run_jobs(single_run, jobs, workers, f"scaling ({len(jobs)} runs)")
        pending = {}
        widenings -= 1
        for (m, b), grid in grids.items() if widenings >= 0 else ():
            _, _, medians = tune_cell(results, m, b, grid, seeds)
            extra = _widened(grid, int(np.argmin(medians))) if math.isfinite(min(medians)) else None
            if extra is not None:
                pending[(m, b)] = [extra]
                grids[(m, b)] = sorted(grid + [extra])
    rows = []
    for m in names:
        for b in batch_sizes:
            chosen, runs, medians = tune_cell(results, m, b, grids[(m, b)], seeds)
            steps = _median_steps(runs)
            reached = [r for r in runs if r["reached"]]
            rows.append({
                "method": m, "batch_size": b, "steps_to_target": steps if math.isfinite(steps) else None,
                "learning_rate": chosen, "knob": methods_module.METHODS[m].knob, "seeds": seeds,
                "reached": len(reached), "grid": grids[(m, b)],
                "median_steps_per_value": [x if math.isfinite(x) else None for x in medians],
                "gradient_equivalents": _median_or_none([r["gradient_equivalents"] for r in reached]),
                "sequential_passes": _median_or_none([r["sequential_passes"] for r in reached]),
                "wall_s": _median_or_none([r["wall_s"] for r in reached]),
                "seconds_per_step": float(np.median([r["seconds_per_step"] for r in runs]))})
    adam = {r["batch_size"]: r for r in rows if r["method"] == "Adam"}
    for row in rows:
        reference = adam.get(row["batch_size"])
        both = reference and row["steps_to_target"] and reference["steps_to_target"]
        row["steps_ratio_to_adam"] = row["steps_to_target"] / reference["steps_to_target"] if both else None
        row["seconds_per_step_ratio_to_adam"] = (row["seconds_per_step"] / reference["seconds_per_step"]
                                                 if reference else None)
        row["wall_ratio_to_adam"] = (row["wall_s"] / reference["wall_s"]
                                     if reference and row["wall_s"] and reference["wall_s"] else None)
    critical = {m: critical_batch_size(list(batch_sizes), [r["steps_to_target"] for r in rows
                                                          if r["method"] == m]) for m in names}
    breakdown = [step_time_breakdown(quick, m, next(r["learning_rate"] for r in rows if r["method"] == m
                                                    and r["batch_size"] == batch_sizes[-1]))
                 for m in ("Adam", "K-FAC", "Shampoo") if m in names]
    print_table(rows, ["method", "batch_size", "steps_to_target", "learning_rate", "steps_ratio_to_adam",
                       "sequential_passes", "seconds_per_step_ratio_to_adam"])
    print("critical batch size:", critical)
    w = workload(quick)
    payload = {
        "quick": quick, "workload": {**w.describe(), "batch_sizes": list(batch_sizes)},
        "target": {"metric": w.target.metric, "value": w.target.value, "how_fixed": w.target.how_fixed},
        "rows": rows, "critical_batch_size": critical, "step_time_breakdown": breakdown,
        "runs": results,
        "methods": {name: methods_module.NOTES[name] for name in names},
        "conventions": {
            "steps_to_target": "median over seeds of the steps at the first evaluation meeting the target "
                               "(a miss counts as infinite; null when the median is infinite)",
            "learning_rate": "the chosen value of the method's knob (see 'knob': the learning rate, or the "
                             "initial damping of K-FAC and Hessian-free)",
            "tuning": f"per (method, batch size): a 5-value log-spaced base grid, widened by one value "
                      f"beyond an edge while the best is there (at most {MAX_WIDENING} times); each value on "
                      "every seed; fewest median steps",
            "max_steps": QUICK["max_steps"] if quick else MAX_STEPS,
            "max_sequential_passes": 5 * QUICK["max_steps"] if quick else MAX_PASSES,
            "budget_s": f"{BUDGET_S:g} s per run, a safety net (stopped_by 'wall' when it binds)",
            "critical_batch_size": "walking up from the smallest batch size that reaches the target, the "
                                   "largest b reached while "
                                   "each step up from b' gives steps(b) <= steps(b') (b'/b)^0.737 (0.6 of "
                                   "the steps at a doubling; perfect scaling is 0.5)",
            "evaluation_cadence": CADENCE_RULE,
            "work_weights": WORK_WEIGHTS,
            "machine_dependent": "seconds_per_step, wall_s and their ratios, step_time_breakdown; steps and "
                                 "gradient-equivalents are not",
            "parallel": f"{workers} worker processes: wall times measured with {workers} runs in parallel",
        },
        "workers": workers,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "library default"),
        "load_average": {"start": load_start, "end": load_average()},
        "total_s": time.perf_counter() - start,
    }
    write_results("scaling", payload, "rows", output_dir, quick, plot=plot_scaling)
    print(f"total {payload['total_s']:.0f} s")
    return payload


def _median_or_none(values):
    return float(np.median(values)) if values else None


def plot_scaling(payload, path):
    """Steps to target against batch size (log-log), one line per method, with perfect scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for color, method in zip(plt.cm.tab10.colors, payload["critical_batch_size"]):
        rows = [r for r in payload["rows"] if r["method"] == method and r["steps_to_target"]]
        if not rows:
            continue
        b = [r["batch_size"] for r in rows]
        steps = [r["steps_to_target"] for r in rows]
        critical = payload["critical_batch_size"][method]
        ax.plot(b, steps, "o-", color=color, label=f"{method} (critical batch {critical})")
        ax.plot(b, steps[0] * b[0] / np.array(b, dtype=float), ":", color=color, lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    target = payload["target"]
    ax.set_ylabel(f"steps to {target['metric'].replace('_', ' ')} <= {target['value']:g}")
    seeds = payload["rows"][0]["seeds"]
    ax.set_title(f"median over {seeds} seed(s); dotted: perfect scaling from the smallest batch", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
