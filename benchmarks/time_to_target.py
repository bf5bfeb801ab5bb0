"""Time to a target fixed in advance (the AlgoPerf methodology: Dahl et al. 2023; Kasimbeg et al. 2025).

For each workload of :mod:`benchmarks.workloads` and each of its methods
(:mod:`benchmarks.methods`):

1. **Anchor and targets**: on MNIST-1D, Adam with the data set paper's setup
   (40-256-256-10, 1e-2, batch 100, 8000 steps, no weight decay), 5 seeds, run to the end;
   its test accuracies are recorded with the target they support
   (``workloads.MNIST1D_TARGET``, fixed from this anchor before any other method ran). A
   workload whose target is not recorded in :mod:`benchmarks.workloads` yet (NaN) gets it
   from its Adam pilot (:func:`fix_target`) before any other run; the JSON keeps the pilot.
2. **Tuning**, machine-independent: each value of the method's search space (the same
   number of trials for every method) runs on seed 0 until the target or its budget; the
   chosen value is the one with the fewest gradient-equivalents to the target, or, if no
   trial reaches it, the one with the best metric.
3. **Final runs**: the chosen value on seeds 0..K-1 (default K = 3), fresh runs; each
   records the steps, gradient-equivalents, sequential passes and wall seconds at the
   first evaluation that meets the target (see :mod:`benchmarks.runs` for the units and
   the cadence of evaluations), or ``reached: false``.

A run stops at the target, after ``max_steps`` steps, past ``max_work`` gradient-equivalents
or past ``budget_s`` wall seconds (a safety cap, generous on a quiet machine: a run stopped
by it says ``stopped_by: "wall"`` and depends on the machine). A run that misses counts as
infinitely slow. Summary: performance profiles (Dolan & More 2002): for each problem (a
workload and a seed) the ratio of each method's cost to the best method's, and the fraction
of problems a method solves within a factor tau of the best; panels for wall time,
gradient-equivalents and sequential passes. A method that does not run on a workload (the
dense methods outside ``spirals``) counts as not reaching its target there.

Jobs run in ``--workers`` processes (default 2, one per core of the reference machine,
one BLAS thread each): wall times are then measured with both cores busy, as the JSON says.
"""

import functools
import math
import os
import time
import warnings

import numpy as np

from . import methods as methods_module
from . import workloads as workloads_module
from .common import load_average, print_table, run_jobs, write_results
from .runs import CADENCE_RULE, WORK_WEIGHTS, Target, evaluation_due, run_to_target

#: Costs of a run the performance profiles compare, with their names in the figure.
PROFILE_COSTS = {"wall_s": "wall time", "gradient_equivalents": "gradient-equivalents",
                 "sequential_passes": "sequential passes"}


@functools.cache
def _workload(name, quick, size):
    return workloads_module.build(name, quick, size)


def single_run(workload_name, quick, size, method_name, value, seed):
    """One run of ``method_name`` with its knob at ``value`` on a workload; a result row."""
    workload = _workload(workload_name, quick, size)
    method = methods_module.METHODS[method_name]
    optimizer = method.build(value, seed, workload.model, workload.n_train)
    batch_size = workload.batch_size if method.batching == "minibatch" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # K-FAC's small-batch warning: the batch is the workload's
        result = run_to_target(workload.problem(), optimizer, workload.model.init(seed), workload.metric,
                               workload.target, batch_size=batch_size, seed=seed,
                               max_work=workload.max_work, max_steps=workload.max_steps,
                               budget_s=workload.budget_s)
    return {"workload": workload_name, "method": method_name, "seed": seed, method.knob: value,
            "hyperparameter": {method.knob: value}, **result.as_dict()}


def anchor_run(workload_name, quick, size, seed, steps):
    """Adam with the paper's setup from seed: test accuracy at the evaluation cadence, to the end."""
    from mininn import fit
    from mininn.optim import Adam

    workload = _workload(workload_name, quick, size)
    anchor = workloads_module.MNIST1D_ANCHOR
    curve = {"step": [], "test_accuracy": []}

    def callback(step, theta, info):
        if evaluation_due(step + 1) or step + 1 == steps:
            curve["step"].append(step + 1)
            curve["test_accuracy"].append(workload.test_accuracy(theta))

    fit(workload.problem(), Adam(anchor["learning_rate"]), workload.model.init(seed), steps,
        batch_size=workload.batch_size, seed=seed, callback=callback)
    return {"seed": seed, "final_test_accuracy": curve["test_accuracy"][-1],
            "best_test_accuracy": max(curve["test_accuracy"]), **curve}


def anchor(quick, size, seeds, workers):
    """The MNIST-1D anchor: the paper's Adam setup, run to the end on each seed."""
    setup = workloads_module.MNIST1D_ANCHOR
    steps = 100 if quick else setup["steps"]
    runs = run_jobs(anchor_run, [("mnist1d", quick, size, seed, steps) for seed in range(seeds)],
                    workers, "mnist1d anchor")
    final = [run["final_test_accuracy"] for run in runs]
    target = _workload("mnist1d", quick, size).target
    return {"setup": {**setup, "steps": steps, "seeds": seeds,
                      "sampling": "fit's minibatches (a fresh random batch of 100 each step)"},
            "final_test_accuracy": final, "median_final_test_accuracy": float(np.median(final)),
            "best_test_accuracy": [run["best_test_accuracy"] for run in runs],
            "reached_target_at_end_first_3_seeds": int(sum(target.met(a) for a in final[:3])),
            "curves": runs}


def choose(trials, target):
    """The tuning trial with the fewest gradient-equivalents to the target, else the best metric."""
    reached = [t for t in trials if t["reached"]]
    if reached:
        return min(reached, key=lambda t: t["gradient_equivalents"])
    best = trials[0]
    for trial in trials[1:]:
        if target.better(trial["best_metric"], best["best_metric"]):
            best = trial
    return best


def performance_profiles(runs, method_names, cost):
    """Per method, the sorted ratios of its ``cost`` to the best method's on each (workload, seed).

    A run that did not reach the target (or a method absent from a workload) has ratio inf.
    """
    problems = sorted({(r["workload"], r["seed"]) for r in runs})
    ratios = {name: [] for name in method_names}
    for workload, seed in problems:
        costs = {r["method"]: (r[cost] if r["reached"] else math.inf) for r in runs
                 if r["workload"] == workload and r["seed"] == seed}
        best = min(costs.values(), default=math.inf)
        for name in method_names:
            value = costs.get(name, math.inf)
            ratios[name].append(value / best if math.isfinite(value) and best > 0 else math.inf)
    return {name: sorted(values) for name, values in ratios.items()}


def plot_profiles(profiles, path):
    """One panel per cost: fraction of problems solved within tau times the best, against tau."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(profiles), figsize=(4.2 * len(profiles), 3.8), sharey=True)
    for ax, (cost, ratios) in zip(np.atleast_1d(axes), profiles.items()):
        finite = [r for values in ratios.values() for r in values if math.isfinite(r)]
        tau_max = max([2.0, *finite]) * 1.2
        taus = np.logspace(0, np.log10(tau_max), 200)
        for color, (name, values) in zip(plt.cm.tab10.colors, ratios.items()):
            values = np.array(values)
            fraction = [(values <= tau).mean() if len(values) else 0.0 for tau in taus]
            ax.step(taus, fraction, where="post", color=color, label=name)
        ax.set_xscale("log")
        ax.set_xlabel(f"tau (ratio of {PROFILE_COSTS[cost]} to the best)")
        ax.set_title(PROFILE_COSTS[cost])
    np.atleast_1d(axes)[0].set_ylabel("fraction of problems within tau")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summarise(runs):
    """Per workload and method: medians over seeds of the costs to target, over the runs that reached it."""
    table = []
    for workload in dict.fromkeys(r["workload"] for r in runs):
        for method in dict.fromkeys(r["method"] for r in runs if r["workload"] == workload):
            group = [r for r in runs if r["workload"] == workload and r["method"] == method]
            reached = [r for r in group if r["reached"]]
            row = {"workload": workload, "method": method, "reached": f"{len(reached)}/{len(group)}"}
            for key in ("steps", "gradient_equivalents", "sequential_passes", "wall_s"):
                values = [r[key] for r in group]
                # the median over seeds, a miss counting as infinite
                median = float(np.median([v if v is not None else math.inf for v in values]))
                row[key] = median if math.isfinite(median) else None
            table.append(row)
    return table


def run(quick=False, output_dir=None, seeds=None, workers=2, workload="all", size="default"):
    """Run the benchmark; write time_to_target.{json,csv} and its performance profiles (PNG)."""
    start = time.perf_counter()
    load_start = load_average()
    seeds = int(seeds if seeds is not None else (1 if quick else 3))
    names = list(workloads_module.WORKLOADS) if workload in (None, "all") else [workload]
    available = {name: m for name, m in methods_module.METHODS.items() if m.available}
    payload_anchor = anchor(quick, size, 1 if quick else workloads_module.MNIST1D_ANCHOR["seeds"],
                            workers) if "mnist1d" in names else None
    built = {name: _workload(name, quick, size) for name in names}
    target_pilots = {}
    for name, w in built.items():
        if not np.isfinite(w.target.value):  # not fixed yet: the Adam pilot fixes it before any other run
            value, how, pilot = fix_target(name, size, workers)
            w.target = Target(w.target.metric, value, w.target.direction, how)
            target_pilots[name] = pilot
    tuning_jobs = [(name, quick, size, method, value, 0) for name, w in built.items()
                   for method in w.methods if method in available
                   for value in available[method].grid(name)]
    trials = run_jobs(single_run, tuning_jobs, workers, "tuning")
    tuning, final_jobs = {}, []
    for name, w in built.items():
        tuning[name] = {}
        for method in (m for m in w.methods if m in available):
            mine = [t for t in trials if t["workload"] == name and t["method"] == method]
            chosen = choose(mine, w.target)
            knob = available[method].knob
            tuning[name][method] = {"knob": knob, "grid": [t[knob] for t in mine], "chosen": chosen[knob],
                                    "trials": [{k: t[k] for k in (knob, "reached", "steps",
                                                                  "gradient_equivalents", "best_metric",
                                                                  "stopped_by")} for t in mine]}
            final_jobs += [(name, quick, size, method, chosen[knob], seed) for seed in range(seeds)]
    runs = run_jobs(single_run, final_jobs, workers, "final runs")
    method_names = [m for m in available if any(r["method"] == m for r in runs)]
    profiles = {cost: performance_profiles(runs, method_names, cost) for cost in PROFILE_COSTS}
    summary = summarise(runs)
    print_table(summary, ["workload", "method", "reached", "steps", "gradient_equivalents",
                          "sequential_passes", "wall_s"])
    payload = {
        "quick": quick,
        "workloads": [{"name": w.name, "target": {"metric": w.target.metric, "value": w.target.value},
                       "budget_s": w.budget_s, **w.describe()} for w in built.values()],
        "runs": [{k: r[k] for k in ("workload", "method", "seed", "reached", "steps", "gradient_equivalents",
                                    "sequential_passes", "wall_s", "hyperparameter", "best_metric",
                                    "stopped_by", "total_steps", "total_gradient_equivalents",
                                    "total_wall_s")} for r in runs],
        "summary": summary, "tuning": tuning, "anchor": payload_anchor, "target_pilots": target_pilots,
        "methods": {name: methods_module.NOTES[name] for name in method_names},
        "profiles": {cost: {name: [r if math.isfinite(r) else None for r in ratios]
                            for name, ratios in by_method.items()} for cost, by_method in profiles.items()},
        "conventions": {
            "gradient_equivalents": "evaluations weighted by kind (WORK_WEIGHTS) in full-training-set "
                                    "units: one on b of the n training examples counts b/n",
            "work_weights": WORK_WEIGHTS,
            "sequential_passes": "the same weights without b/n: dependent passes, whatever their batch",
            "not_counted": "eigendecompositions and Kronecker products of K-FAC and Shampoo, L-BFGS's "
                           "two-loop recursion: in wall time only",
            "evaluation_cadence": CADENCE_RULE,
            "steps": "steps (and the other costs) at the first evaluation that meets the target; null when "
                     "the run stopped first (stopped_by: work, steps, wall budget or diverged)",
            "wall_s": "seconds of training to that evaluation, target evaluations excluded",
            "tuning": "seed 0, each value of the method's search space run to the target or its budget; "
                      "chosen: fewest gradient-equivalents to the target, else the best metric reached; "
                      "machine-independent. Final runs: the chosen value on seeds 0..K-1, fresh runs",
            "seeds": "seed s initialises theta with model.init(s) and seeds the minibatches and any "
                     "sampling of the method",
            "profiles": "per (workload, seed): the ratio of a method's cost to the best method's; a miss, or "
                        "a method absent from the workload, is inf (null in JSON)",
            "parallel": f"{workers} worker processes, each with the BLAS threads below: wall times are "
                        f"measured with {workers} runs in parallel",
        },
        "workers": workers,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "library default"),
        "load_average": {"start": load_start, "end": load_average()},
        "total_s": time.perf_counter() - start,
    }
    write_results("time_to_target", payload, "runs", output_dir, quick,
                  plot=lambda payload, path: plot_profiles(profiles, path))
    print(f"total {payload['total_s']:.0f} s")
    return payload


def fix_target(workload_name, size="default", workers=2):
    """The Adam pilot that fixes a workload's target: (value, how it was fixed, the pilot's runs).

    Adam's grid on seed 0 for the whole budget (with an unreachable target), the rate with the best
    metric, and the best value its run had reached by half of the work it did (the budget, or its
    step cap), rounded to two significant figures towards the start (up for an error).
    """
    workload = _workload(workload_name, False, size)
    grid = methods_module.METHODS["Adam"].grid(workload_name)
    results = run_jobs(_pilot_run, [(workload_name, size, lr) for lr in grid], workers,
                       f"{workload_name} target pilot")
    unreachable = _unreachable(workload.target)
    best = results[0]
    for result in results[1:]:
        if unreachable.better(result["best"], best["best"]):
            best = result
    half = best["half"]
    unit = 10.0 ** (math.floor(math.log10(abs(half))) - 1)
    rounded_up = workload.target.direction == "min"
    rounded = math.ceil(half / unit) if rounded_up else math.floor(half / unit)
    how = (f"pilot of Adam's grid {grid} on seed 0 for the whole budget: the best rate, "
           f"{best['learning_rate']:g}, had {workload.target.metric} {half:.4g} by half of its run "
           f"({best['work'] / 2:.4g} gradient-equivalents), rounded {'up' if rounded_up else 'down'} to two "
           "significant figures")
    return float(f"{rounded * unit:.3g}"), how, results


def _unreachable(target):
    return Target(target.metric, -math.inf if target.direction == "min" else math.inf, target.direction)


def _pilot_run(workload_name, size, learning_rate):
    from mininn.optim import Adam

    workload = _workload(workload_name, False, size)
    problem, unreachable = workload.problem(), _unreachable(workload.target)
    trajectory = []

    def metric(theta):
        value = workload.metric(theta)
        trajectory.append((problem.ledger.gradient_equivalents, value))
        return value

    result = run_to_target(problem, Adam(learning_rate), workload.model.init(0), metric, unreachable,
                           batch_size=workload.batch_size, seed=0, max_work=workload.max_work,
                           max_steps=workload.max_steps, budget_s=workload.budget_s)
    work = result.total_gradient_equivalents
    half = math.nan
    for used, value in trajectory:
        if used <= work / 2 and unreachable.better(value, half):
            half = value
    return {"learning_rate": learning_rate, "half": half, "best": result.best_metric, "work": work,
            "stopped_by": result.stopped_by, "steps": result.total_steps}
