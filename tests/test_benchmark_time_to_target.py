"""The time-to-target machinery: work accounting, target checks, tuning choice, profiles, workloads."""

import math

import numpy as np
import pytest

from benchmarks import methods, runs, time_to_target, workloads
from mininn import MLP, data
from mininn.activations import sigmoid
from mininn.optim import SGD, HessianFree


def spiral_problem(n=40):
    X, Y = data.two_spirals(n, seed=0)
    model = MLP([2, 6, 1])
    return model, runs.WorkProblem(model, "sigmoid_cross_entropy", X, Y)


def test_work_is_counted_in_full_training_set_units_and_passes_without_them():
    model, problem = spiral_problem(40)
    theta = model.init(0)
    batch = problem.minibatch(10, seed=1)
    batch.value_and_grad(theta)                   # 1 gradient on a quarter: 0.25
    batch.minibatch(5, seed=2).ggn_vp(theta, theta)  # 1 product on an eighth: 0.125
    problem.value(theta)                          # a full value: 0.5
    assert problem.ledger.gradient_equivalents == pytest.approx(0.25 + 0.125 + 0.5)
    assert problem.ledger.sequential_passes == pytest.approx(1 + 1 + 0.5)
    # the counts themselves are the package's, per problem
    assert batch.counts["grad"] == 1 and problem.counts["value"] == 1


def test_hessian_free_curvature_minibatch_is_weighted_by_its_size():
    model, problem = spiral_problem(40)
    HessianFree(curvature_batch_size=8, preconditioner=False, cg_max_iters=3, martens_stop=False,
                backtracking=False, line_search=False).step(problem, model.init(0), HessianFree().init(
                    model.init(0)))
    counts = problem.counts
    # one gradient and values on the full set; products on 8 of 40 examples, counted by the subset
    products = problem.ledger.sequential_passes - counts["grad"] - 0.5 * counts["value"]
    assert products >= 3
    expected = counts["grad"] + 0.5 * counts["value"] + products * 8 / 40
    assert problem.ledger.gradient_equivalents == pytest.approx(expected)


def test_evaluation_cadence_bounds_the_relative_error_of_steps():
    due = [s for s in range(1, 5001) if runs.evaluation_due(s)]
    assert due[:runs.EVERY_STEP_UNTIL] == list(range(1, runs.EVERY_STEP_UNTIL + 1))
    # the target first met at step a + 1 is reported at step b, the next evaluation
    errors = [(b - (a + 1)) / (a + 1) for a, b in zip(due, due[1:])]
    assert max(errors) <= 1 / runs.EVERY_STEP_UNTIL
    assert len(due) < 400  # 310 of the first 5000 steps: the evaluations cost little


def test_target_direction():
    accuracy = runs.Target("test_accuracy", 0.68, "max")
    error = runs.Target("test_reconstruction_error", 5.0, "min")
    assert accuracy.met(0.68) and not accuracy.met(0.679) and not accuracy.met(math.nan)
    assert error.met(4.9) and not error.met(5.1)
    assert error.better(1.0, 2.0) and accuracy.better(0.7, 0.6) and accuracy.better(0.1, math.nan)


def test_run_to_target_reports_the_first_evaluation_that_meets_it():
    model, problem = spiral_problem(40)
    theta0 = model.init(0)
    losses = []

    def metric(theta):  # the training loss, evaluated off the ledger
        losses.append(problem.objective(theta))
        return losses[-1]

    start = problem.objective(theta0)
    target = runs.Target("train_loss", 0.97 * start, "min")
    result = runs.run_to_target(problem, SGD(0.5), theta0, metric, target, max_steps=500)
    assert result.reached and result.stopped_by == "target"
    first = next(i for i, loss in enumerate(losses) if loss <= target.value) + 1
    assert result.steps == first <= runs.EVERY_STEP_UNTIL  # evaluated after every early step
    assert result.gradient_equivalents == pytest.approx(result.steps)  # one full gradient per step
    assert result.wall_s > 0


def test_run_to_target_that_misses_has_no_costs():
    model, problem = spiral_problem(40)
    target = runs.Target("train_loss", -1.0, "min")  # unreachable
    result = runs.run_to_target(problem, SGD(0.1), model.init(0), problem.objective, target, max_work=7)
    assert not result.reached and result.stopped_by == "work"
    assert result.steps is None and result.wall_s is None and result.gradient_equivalents is None
    assert result.total_steps == 7


def test_a_diverging_run_misses():
    X, Y = data.regression_1d(20, seed=0)
    model = MLP([1, 6, 1], activation="tanh")
    problem = runs.WorkProblem(model, "mse", X, Y)
    target = runs.Target("train_loss", -1.0, "min")
    with np.errstate(all="ignore"):
        result = runs.run_to_target(problem, SGD(1e3), model.init(0), problem.objective, target,
                                    max_steps=500)
    assert not result.reached and result.stopped_by == "diverged"


def test_choose_prefers_fewest_gradient_equivalents_then_best_metric():
    target = runs.Target("test_accuracy", 0.9, "max")
    trials = [{"reached": True, "gradient_equivalents": 5.0, "best_metric": 0.91, "lr": 1},
              {"reached": True, "gradient_equivalents": 3.0, "best_metric": 0.90, "lr": 2},
              {"reached": False, "gradient_equivalents": None, "best_metric": 0.5, "lr": 3}]
    assert time_to_target.choose(trials, target)["lr"] == 2
    misses = [{"reached": False, "best_metric": 0.5, "lr": 1},
              {"reached": False, "best_metric": 0.7, "lr": 2},
              {"reached": False, "best_metric": math.nan, "lr": 3}]
    assert time_to_target.choose(misses, target)["lr"] == 2


def test_performance_profiles_are_ratios_to_the_best_method():
    rows = [{"workload": "w", "seed": 0, "method": "A", "reached": True, "wall_s": 2.0},
            {"workload": "w", "seed": 0, "method": "B", "reached": True, "wall_s": 6.0},
            {"workload": "w", "seed": 1, "method": "A", "reached": False, "wall_s": None},
            {"workload": "w", "seed": 1, "method": "B", "reached": True, "wall_s": 4.0},
            {"workload": "v", "seed": 0, "method": "B", "reached": True, "wall_s": 1.0}]
    profiles = time_to_target.performance_profiles(rows, ["A", "B", "C"], "wall_s")
    assert profiles["A"] == [1.0, math.inf, math.inf]  # a miss and an absent workload are inf
    assert profiles["B"] == [1.0, 1.0, 3.0]
    assert profiles["C"] == [math.inf] * 3


def test_martens_autoencoder_has_a_linear_code_layer_and_takes_the_fast_path():
    workload = workloads.curves("curves-sigmoid", quick=True)
    model, X = workload.model, workload.X_test[:4]
    theta = model.init(0)
    assert workload.problem().fast_path
    h = X
    for index, (W, b) in enumerate(model.layout.unflatten(theta)):
        z = h @ W + b
        h = z if index in (1, 3) else sigmoid(z)  # code layer (width 4) linear, output logits
    assert np.allclose(model.forward(theta, X), h)


def test_every_method_has_equal_trials_and_builds():
    for name, method in methods.METHODS.items():
        for workload, grid in method.grids.items():
            assert 1 <= len(grid) <= methods.TRIALS, (name, workload)
            if name in ("SGD-momentum", "Adam", "K-FAC", "K-FAC-no-momentum", "Hessian-free", "Shampoo"):
                assert len(grid) == methods.TRIALS
        if method.available:
            assert method.build(list(method.grids.values())[0][0], 0, MLP([2, 3, 1]), 100) is not None
    for name in methods.SCALING_METHODS:
        assert len(methods.METHODS[name].scaling_grid) == 5


def test_workload_targets_are_fixed_and_metrics_exist():
    for name in workloads.WORKLOADS:
        workload = workloads.build(name, quick=True)
        assert workload.target.metric in workload.metrics
        assert set(workload.methods) <= set(methods.METHODS)
    assert workloads.MNIST1D_TARGET.value == 0.68
    assert np.isfinite(workloads.SPIRALS_TARGET.value)


def test_quick_run_writes_the_schema_other_tools_read(tmp_path):
    import json

    time_to_target.run(quick=True, output_dir=tmp_path, workers=1, workload="spirals")
    written = json.loads((tmp_path / "time_to_target_quick.json").read_text())
    for key in ("machine", "date", "commit", "workloads", "runs", "conventions", "load_average"):
        assert key in written
    (workload,) = written["workloads"]
    assert workload["name"] == "spirals" and {"metric", "value"} <= set(workload["target"])
    assert "budget_s" in workload
    names = {run["method"] for run in written["runs"]}
    assert {"Gauss-Newton", "natural-gradient", "Adam"} <= names
    schema = {"workload", "method", "seed", "reached", "steps", "gradient_equivalents", "wall_s"}
    for run in written["runs"]:
        assert schema <= set(run)
        assert (run["steps"] is None) == (not run["reached"])
    assert (tmp_path / "time_to_target_quick.png").stat().st_size > 0
