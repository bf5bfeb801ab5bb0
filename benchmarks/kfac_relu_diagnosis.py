"""Why K-FAC misses the ``curves-relu`` target: training and test error along its runs and Adam's.

``python -m benchmarks kfac-relu-diagnosis`` reruns K-FAC and Adam with the values the
time-to-target benchmark chose for ``curves-relu`` (read from ``results/time_to_target.json``)
on seeds 0-2 for the whole budget, with a target no run can meet, and records the training and
test reconstruction errors (squared error per image) at the benchmark's evaluation cadence. A
miss caused by overfitting would show a training error at or below Adam's; a miss caused by
slow optimisation, a training error above it. Steps and errors do not depend on the machine (no
times are recorded). Writes ``results/kfac_relu_diagnosis.{json,csv}`` (about 2 minutes with
two workers).
"""

import json
import os
import warnings

from . import methods as methods_module
from . import workloads as workloads_module
from .common import RESULTS, print_table, run_jobs, write_results
from .runs import Target, evaluation_due, run_to_target

WORKLOAD = "curves-relu"
METHODS = ("Adam", "K-FAC")
SEEDS = (0, 1, 2)


def traced_run(method_name, value, seed, quick):
    """One run for the whole budget; the errors at each evaluation."""
    workload = workloads_module.build(WORKLOAD, quick, "default")
    method = methods_module.METHODS[method_name]
    optimizer = method.build(value, seed, workload.model, workload.n_train)
    trace = {"step": [], "train_error": [], "test_error": []}
    due_steps = (step for step in range(1, workload.max_steps + 1) if evaluation_due(step))

    def metric(theta):  # called at each step where evaluation_due holds, in order
        trace["step"].append(next(due_steps))
        trace["train_error"].append(workload.reconstruction_error(theta, workload.X_train))
        trace["test_error"].append(workload.test_reconstruction_error(theta))
        return trace["test_error"][-1]

    unreachable = Target("test_reconstruction_error", -1.0, "min", "none: run the whole budget")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # K-FAC's small-batch warning: the batch is the workload's
        result = run_to_target(workload.problem(), optimizer, workload.model.init(seed), metric, unreachable,
                               batch_size=workload.batch_size if method.batching == "minibatch" else None,
                               seed=seed, max_work=workload.max_work, max_steps=workload.max_steps)
    return {"method": method_name, "hyperparameter": {method.knob: value}, "seed": seed,
            "total_steps": result.total_steps, "final_train_error": trace["train_error"][-1],
            "final_test_error": trace["test_error"][-1], "best_test_error": min(trace["test_error"]), **trace}


def run(quick=False, output_dir=None, workers=2):
    """Run the diagnosis; write kfac_relu_diagnosis.{json,csv} (``_quick`` with ``quick``)."""
    chosen = json.loads((RESULTS / "time_to_target.json").read_text())["tuning"][WORKLOAD]
    seeds = SEEDS[:1] if quick else SEEDS
    jobs = [(m, chosen[m]["chosen"], seed, quick) for m in METHODS for seed in seeds]
    runs = run_jobs(traced_run, jobs, workers, "K-FAC diagnosis")
    print_table(runs, ["method", "seed", "total_steps", "final_train_error", "final_test_error",
                       "best_test_error"])
    payload = {"quick": quick, "workload": WORKLOAD, "chosen": {m: chosen[m]["chosen"] for m in METHODS},
               "workers": workers, "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "library default"),
               "runs": runs}
    write_results("kfac_relu_diagnosis", payload, "runs", output_dir, quick)
    return payload
