"""The MNIST-1D reproduction benchmark: its model, initialisation, batch order, cadence and results file."""

import csv
import json

import numpy as np
import pytest

from benchmarks import mnist1d_reproduction as repro
from benchmarks.__main__ import main
from mininn import Problem, data
from mininn.optim import Adam
from tests.helpers import fd_grad, relative_error


def small_arrays(n=60, n_test=30, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 40)), rng.integers(10, size=n),
            rng.standard_normal((n_test, 40)), rng.integers(10, size=n_test))


def test_residual_mlp_is_the_papers_mlpbase():
    model = repro.ResidualMLP(5, 7, 3)
    theta = np.random.default_rng(1).standard_normal(model.num_params)
    X = np.random.default_rng(2).standard_normal((4, 5))
    (W1, b1), (W2, b2), (W3, b3) = model.layout.unflatten(theta)
    h1 = np.maximum(X @ W1 + b1, 0.0)
    expected = (h1 + np.maximum(h1 @ W2 + b2, 0.0)) @ W3 + b3
    np.testing.assert_allclose(model.forward(theta, X), expected, rtol=1e-12, atol=1e-12)
    assert model.num_params == 5 * 7 + 7 + 7 * 7 + 7 + 7 * 3 + 3
    assert repro.ResidualMLP(40, 100, 10).num_params == repro.PAPER_SETUP["model"]["num_params"]


def test_residual_mlp_gradient_matches_finite_differences():
    model = repro.ResidualMLP(4, 6, 3)
    rng = np.random.default_rng(3)
    problem = Problem(model, "softmax_cross_entropy", rng.standard_normal((8, 4)),
                      data.one_hot(rng.integers(3, size=8), 3))
    theta = rng.standard_normal(model.num_params)
    assert relative_error(problem.grad(theta), fd_grad(problem.value, theta)) < 1e-6


def test_torch_default_init_is_uniform_within_one_over_sqrt_fan_in():
    model = repro.ResidualMLP(40, 256, 10)
    theta = repro.torch_default_init(model.layout, seed=0)
    for layer in model.layout:
        bound = 1.0 / np.sqrt(layer.fan_in)
        for part in (theta[layer.weight], theta[layer.bias]):
            assert np.all(np.abs(part) <= bound)
        # uniform on [-a, a] has variance a^2 / 3 (a sixth of He's 2 / fan_in)
        assert np.var(theta[layer.weight]) == pytest.approx(bound**2 / 3, rel=0.1)
    np.testing.assert_array_equal(theta, repro.torch_default_init(model.layout, seed=0))
    assert not np.array_equal(theta, repro.torch_default_init(model.layout, seed=1))


class RecordingOptimizer:
    """Records the first input column of every batch it is given; leaves theta unchanged."""

    def __init__(self):
        self.batches = []

    def init(self, theta):
        return None

    def step(self, problem, theta, state):
        self.batches.append(problem.X[:, 0].astype(int).tolist())
        return theta, state, {"loss": 0.0, "grad_norm": 0.0}


def test_sequential_batches_take_the_papers_slices_in_order():
    X = np.tile(np.arange(10.0)[:, None], (1, 2))  # row i holds i
    model = repro.make_model("plain", 3, input_dim=2, output_dim=2)
    problem = Problem(model, "mse", X, np.zeros((10, 2)))
    recorder = RecordingOptimizer()
    optimizer = repro.SequentialBatches(recorder, batch_size=4)
    state = optimizer.init(np.zeros(model.num_params))
    for _ in range(4):
        _, state, _ = optimizer.step(problem, np.zeros(model.num_params), state)
    # start (4 k) mod 10; a slice past the end is cut, as x[start:start + 4] is
    assert recorder.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [2, 3, 4, 5]]


def test_sequential_adam_equals_a_manual_loop_over_the_slices():
    X, y, _, _ = small_arrays(n=20)
    model = repro.ResidualMLP(40, 8, 10)
    problem = Problem(model, "softmax_cross_entropy", X, data.one_hot(y, 10))
    theta = theta_manual = repro.torch_default_init(model.layout, 0)
    wrapped, adam = repro.SequentialBatches(Adam(1e-2), 8), Adam(1e-2)
    state, adam_state = wrapped.init(theta), adam.init(theta)
    for k in range(5):
        theta, state, _ = wrapped.step(problem, theta, state)
        start = 8 * k % 20
        batch = problem.subset(np.arange(start, min(start + 8, 20)))
        theta_manual, adam_state, _ = adam.step(batch, theta_manual, adam_state)
    np.testing.assert_array_equal(theta, theta_manual)


def test_train_evaluates_on_the_papers_cadence():
    curve, wall = repro.train(small_arrays(), seed=0, hidden=8, total_steps=20, batch_size=10, eval_every=5)
    assert curve["step"] == [0, 5, 10, 15, 20]
    assert all(0.0 <= a <= 1.0 for a in curve["test_accuracy"] + curve["train_accuracy"])
    assert all(np.isfinite(curve["test_loss"])) and wall > 0


def test_training_fits_the_training_set():
    # 60 random examples, a width-64 network, 300 full passes of Adam: memorised
    curve, _ = repro.train(small_arrays(), seed=0, hidden=64, total_steps=300, batch_size=60, eval_every=300)
    assert curve["train_accuracy"][-1] == 1.0


@pytest.mark.parametrize("settings, message", [
    ({"sampling": "shuffled"}, "sampling"),
    ({"model": "conv"}, "model"),
    ({"init": "he"}, "init"),
])
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        repro.train(small_arrays(), seed=0, total_steps=1, **settings)


def test_command_line_refuses_options_of_other_benchmarks():
    for option in (["--workload", "spirals"], ["--size", "full"], ["--methods", "Adam"], ["--seeds", "0"]):
        with pytest.raises(SystemExit):
            main(["mnist1d-reproduction", "--quick", *option])


def test_quick_run_writes_the_results_schema(tmp_path):
    main(["mnist1d-reproduction", "--quick", "--seeds", "2", "--output", str(tmp_path)])
    saved = json.loads((tmp_path / "mnist1d_reproduction_quick.json").read_text())
    assert saved["quick"] is True and saved["seeds"] == [0, 1]
    for key in ("machine", "date", "commit", "setup", "paper_test_accuracy", "test_accuracy", "median",
                "best_test_accuracy", "best_median", "variants", "results"):
        assert key in saved, key
    assert saved["setup"]["batch_size"] == 100 and saved["setup"]["optimizer"]["learning_rate"] == 1e-2
    assert saved["paper_test_accuracy"] == 0.68
    assert set(saved["variants"]) == set(repro.VARIANTS)
    steps = list(range(0, repro.QUICK["total_steps"] + 1, repro.QUICK["eval_every"]))
    for variant in saved["variants"].values():
        assert len(variant["test_accuracy"]) == 2
        assert variant["median"] == pytest.approx(np.median(variant["test_accuracy"]))
        assert all(b >= f for b, f in zip(variant["best_test_accuracy"], variant["test_accuracy"]))
        for curve in variant["curves"]:
            assert curve["step"] == steps
            assert all(0.0 <= a <= 1.0 for a in curve["test_accuracy"] + curve["train_accuracy"])
            assert curve["test_accuracy"][-1] in variant["test_accuracy"]
    assert saved["test_accuracy"] == saved["variants"]["paper"]["test_accuracy"]
    assert saved["median"] == saved["variants"]["paper"]["median"]
    # 41 updates of Adam at 1e-2 already beat chance (10%) on the test set
    assert saved["median"] > 0.2
    with (tmp_path / "mnist1d_reproduction_quick.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * len(repro.VARIANTS)
    assert (tmp_path / "mnist1d_reproduction_quick.png").stat().st_size > 0
