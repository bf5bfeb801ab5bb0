"""Tests of mininn.optim.hessian_free: known optima, safety of every step, each ingredient switched off."""

import math

import numpy as np
import pytest
from helpers import linear_regression, random_problem
from scipy.optimize import minimize

from mininn import MLP, Problem
from mininn.data import curves
from mininn.errors import UnknownNameError
from mininn.optim.hessian_free import HessianFree

INFO_KEYS = {"loss", "grad_norm", "loss_after", "accepted", "step_size", "damping", "rho",
             "cg_iterations", "cg_reason", "backtrack_index", "curvature_products"}


@pytest.fixture(scope="module")
def autoencoder():
    """(problem, theta0): a 64-32-16-4-16-32-64 ReLU autoencoder of 8 x 8 curve images, n = 200."""
    X = curves(200, seed=0, size=8)
    model = MLP([64, 32, 16, 4, 16, 32, 64], activation="relu")
    return Problem(model, "sigmoid_cross_entropy", X, X), model.init(0)


def run(optimizer, problem, theta, steps):
    """Take ``steps`` steps; return the final theta and the list of (theta before, theta after, info)."""
    state = optimizer.init(theta)
    record = []
    for _ in range(steps):
        new, state, info = optimizer.step(problem, theta, state)
        record.append((theta, new, info))
        theta = new
    return theta, record


def check_safe(record):
    """Finite parameters; accepted steps do not raise the loss; rejected steps keep theta exactly."""
    for before, after, info in record:
        assert np.all(np.isfinite(after))
        if info["accepted"]:
            assert info["loss_after"] <= info["loss"]
        else:
            assert np.array_equal(after, before)
            assert info["loss_after"] == info["loss"] and info["step_size"] == 0.0


def check_damping_rule(record):
    """Each step's lambda follows from the previous one by the Levenberg-Marquardt rule, clipped."""
    for (_, _, info), (_, _, following) in zip(record, record[1:]):
        rho = info["rho"]
        factor = 1.5 if not (info["accepted"] and rho >= 0.25) else 2 / 3 if rho > 0.75 else 1.0
        assert following["damping"] == pytest.approx(min(max(info["damping"] * factor, 1e-8), 1e8))


def test_logistic_regression_reaches_the_scipy_optimum():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    Y = (X @ rng.standard_normal((5, 1)) + 0.5 * rng.standard_normal((200, 1)) > 0).astype(float)
    problem = Problem(MLP([5, 1], activation="identity"), "sigmoid_cross_entropy", X, Y, l2=1e-2)
    reference = minimize(problem.value, np.zeros(6), method="trust-ncg", jac=problem.grad,
                         hessp=lambda x, p: problem.hvp(x, p), options={"gtol": 1e-12})
    theta, record = run(HessianFree(), problem, np.zeros(6), 25)
    check_safe(record)
    assert np.max(np.abs(theta - reference.x)) < 1e-6
    assert abs(problem.value(theta) - reference.fun) < 1e-10


@pytest.mark.parametrize("curvature", ["ggn", "hessian"])
def test_least_squares_in_one_undamped_step(curvature):
    problem, optimum = linear_regression(n=50, d=3)
    optimizer = HessianFree(curvature=curvature, damping=0, adapt_damping=False,
                            martens_stop=False, line_search=False)
    theta, [(_, _, info)] = run(optimizer, problem, np.zeros(4), 1)
    assert info["accepted"] and info["cg_reason"] == "converged" and info["step_size"] == 1.0
    np.testing.assert_allclose(theta, optimum, atol=1e-8)
    assert info["rho"] == pytest.approx(1.0, abs=1e-8)  # the model is exact on a quadratic


def test_autoencoder_loss_decreases_monotonically(autoencoder):
    problem, theta0 = autoencoder
    theta, record = run(HessianFree(), problem, theta0, 10)
    check_safe(record)
    losses = [info["loss_after"] for _, _, info in record]
    assert all(info["accepted"] for _, _, info in record)
    assert all(b < a for a, b in zip([record[0][2]["loss"]] + losses, losses))
    assert losses[-1] < 0.4 * record[0][2]["loss"]


@pytest.mark.parametrize("damping", [1e8, 1e-10])
@pytest.mark.parametrize("adapt_damping", [True, False])
def test_extreme_damping_is_safe(autoencoder, damping, adapt_damping):
    problem, theta0 = autoencoder
    theta, record = run(HessianFree(damping=damping, adapt_damping=adapt_damping), problem, theta0, 3)
    check_safe(record)
    if adapt_damping:
        check_damping_rule(record)
    else:
        assert all(info["damping"] == damping for _, _, info in record)
    assert problem.value(theta) < record[0][2]["loss"]


def test_overshooting_steps_are_rejected_and_keep_theta(autoencoder):
    problem, theta0 = autoencoder
    optimizer = HessianFree(damping=1e-10, adapt_damping=False, line_search=False)
    theta, record = run(optimizer, problem, theta0, 3)
    check_safe(record)
    assert not any(info["accepted"] for _, _, info in record)
    assert np.array_equal(theta, theta0)


def test_line_search_shortens_overshooting_steps(autoencoder):
    problem, theta0 = autoencoder
    _, record = run(HessianFree(damping=1e-10, adapt_damping=False), problem, theta0, 3)
    check_safe(record)
    for before, after, info in record:
        alpha = info["step_size"]
        assert info["accepted"] and alpha < 1
        assert math.log(alpha, 0.8) == pytest.approx(round(math.log(alpha, 0.8)))
        # Armijo holds at alpha and fails at alpha / 0.8, with d = (after - before) / alpha
        slope = problem.grad(before) @ (after - before) / alpha
        assert info["loss_after"] <= info["loss"] + 1e-2 * alpha * slope
        longer = before + (after - before) / 0.8
        assert problem.value(longer) > info["loss"] + 1e-2 * (alpha / 0.8) * slope


class StifferThanModelled(Problem):
    """A problem plus ``kappa |theta - center|^2``, a term the Gauss-Newton products do not see."""

    def __init__(self, problem, center, kappa):
        super().__init__(problem.model, problem.loss, problem.X, problem.Y)
        self.center, self.kappa = center, kappa

    def objective(self, theta):
        offset = theta - self.center
        return super().objective(theta) + self.kappa * (offset @ offset)


@pytest.mark.parametrize("fraction, line_search, step_size", [(0.9, True, 0.8), (1.1, True, 1.0),
                                                               (0.9, False, 1.0)])
def test_armijo_needs_one_percent_of_the_predicted_decrease(fraction, line_search, step_size):
    # Least squares from 0: d is the Newton step theta* (CG solves exactly) and the loss along it is
    # L + s (a - a^2 / 2) + kappa a^2 |d|^2 with s = g.d < 0. kappa |d|^2 = -s (1 - 2 f c) / 2 makes
    # the full step lower the loss by f c s (c = 0.01): enough for Armijo if f > 1; else 0.8 is taken.
    least_squares, optimum = linear_regression(n=50, d=3)
    slope = least_squares.grad(np.zeros(4)) @ optimum
    kappa = -slope * (1 - 2 * fraction * 1e-2) / 2 / (optimum @ optimum)
    problem = StifferThanModelled(least_squares, np.zeros(4), kappa)
    optimizer = HessianFree(damping=0, adapt_damping=False, martens_stop=False, line_search=line_search)
    _, [(_, after, info)] = run(optimizer, problem, np.zeros(4), 1)
    assert info["accepted"] and info["rho"] == pytest.approx(2 * fraction * 1e-2)
    assert info["step_size"] == step_size
    np.testing.assert_allclose(after, step_size * optimum, rtol=1e-8)


def test_rejection_raises_the_damping(autoencoder):
    problem, theta0 = autoencoder
    _, record = run(HessianFree(damping=1e-4, line_search=False), problem, theta0, 4)
    check_safe(record)
    rejected = [(info, following) for (_, _, info), (_, _, following) in zip(record, record[1:])
                if not info["accepted"]]
    assert rejected and record[0][2]["accepted"]
    for info, following in rejected:
        assert following["damping"] == pytest.approx(1.5 * info["damping"])


class NaNAwayFromStart(Problem):
    """A problem whose loss is NaN everywhere except at one point."""

    def __init__(self, problem, theta0):
        super().__init__(problem.model, problem.loss, problem.X, problem.Y)
        self.theta0 = theta0

    def value(self, theta):
        return super().value(theta) if np.array_equal(theta, self.theta0) else np.nan


def test_non_finite_loss_is_rejected():
    problem, theta0 = random_problem(n=20, seed=1)
    theta, record = run(HessianFree(), NaNAwayFromStart(problem, theta0), theta0, 2)
    check_safe(record)
    assert not any(info["accepted"] for _, _, info in record)
    assert record[1][2]["damping"] == pytest.approx(1.5 * record[0][2]["damping"])


def test_indefinite_hessian_reports_negative_curvature():
    problem, theta0 = random_problem(sizes=(3, 8, 8, 2), n=30, seed=1)
    assert np.linalg.eigvalsh(problem.hessian(theta0))[0] < -1e-3  # indefinite at the start
    theta, record = run(HessianFree(curvature="hessian", damping=1e-4), problem, theta0, 8)
    check_safe(record)
    assert any(info["cg_reason"] == "negative_curvature" for _, _, info in record)
    assert problem.value(theta) < 0.8 * record[0][2]["loss"]


def test_negative_curvature_at_the_first_cg_step_is_rejected_then_damped_away():
    # f(x) = w2 relu(w1 x + b1) + b2 near w1 = w2 = 0 fitting y = x on x = +-1: the gradient
    # itself is a direction of negative curvature (g.H.g < -|g|^2), so CG stops before its first step.
    problem = Problem(MLP([1, 1, 1], activation="relu"), "mse", np.array([[1.0], [-1.0]]),
                      np.array([[1.0], [-1.0]]))
    theta0 = np.array([0.1, 0.0, 0.1, 0.0])
    gradient = problem.grad(theta0)
    assert gradient @ problem.hvp(theta0, gradient) < -gradient @ gradient
    theta, record = run(HessianFree(curvature="hessian"), problem, theta0, 4)
    check_safe(record)
    check_damping_rule(record)
    first = record[0][2]
    assert first["cg_reason"] == "negative_curvature" and first["cg_iterations"] == 0
    assert not first["accepted"] and np.array_equal(record[0][1], theta0)
    assert all(info["accepted"] for _, _, info in record[1:])
    assert problem.value(theta) < 0.2 * first["loss"]


SWITCHED_OFF = [
    {"adapt_damping": False},
    {"damping": 0.0, "adapt_damping": False},
    {"warm_start": None},
    {"warm_start": 0},
    {"martens_stop": False, "cg_max_iters": 60},
    {"backtracking": False},
    {"preconditioner": False},
    {"curvature_batch_size": 50},
    {"line_search": False},
]


@pytest.mark.parametrize("options", SWITCHED_OFF, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_each_ingredient_can_be_switched_off(autoencoder, options):
    problem, theta0 = autoencoder
    theta, record = run(HessianFree(**options), problem, theta0, 3)
    check_safe(record)
    assert problem.value(theta) < record[0][2]["loss"]


def test_info_fields_are_consistent(autoencoder):
    problem, theta0 = autoencoder
    optimizer = HessianFree(cg_max_iters=15)
    _, record = run(optimizer, problem, theta0, 4)
    stored = {math.ceil(5 * 1.3**j) for j in range(20)}
    check_damping_rule(record)
    assert record[0][2]["damping"] == optimizer.damping
    for step, (_, after, info) in enumerate(record):
        assert set(info) == INFO_KEYS
        assert info["cg_iterations"] <= 15
        assert info["backtrack_index"] <= info["cg_iterations"]
        assert info["backtrack_index"] in stored | {info["cg_iterations"]}
        assert info["curvature_products"] == info["cg_iterations"] + 1 + (step > 0)  # + rho + warm start
        assert 0 < info["step_size"] <= 1 and info["loss_after"] == problem.value(after)
        assert info["grad_norm"] == pytest.approx(np.linalg.norm(problem.grad(record[step][0])))
    assert any(info["cg_reason"] == "max_iters" for _, _, info in record)


def test_cg_backtracking_never_does_worse_than_the_last_iterate(autoencoder):
    problem, theta = autoencoder
    with_backtracking = HessianFree(line_search=False, martens_stop=False, cg_max_iters=100)
    without = HessianFree(line_search=False, martens_stop=False, cg_max_iters=100, backtracking=False)
    state = with_backtracking.init(theta)
    chose_earlier = False
    for _ in range(3):
        new, next_state, info = with_backtracking.step(problem, theta, state)
        _, _, plain = without.step(problem, theta, state)
        assert info["cg_iterations"] == plain["cg_iterations"]
        assert info["loss_after"] <= plain["loss_after"]
        chose_earlier |= info["backtrack_index"] < info["cg_iterations"]
        theta, state = new, next_state
    assert chose_earlier


def test_curvature_minibatch_is_seeded_and_changes_each_step(autoencoder):
    problem, theta0 = autoencoder
    first, _ = run(HessianFree(curvature_batch_size=40, seed=5), problem, theta0, 2)
    again, _ = run(HessianFree(curvature_batch_size=40, seed=5), problem, theta0, 2)
    other, _ = run(HessianFree(curvature_batch_size=40, seed=6), problem, theta0, 2)
    full, _ = run(HessianFree(), problem, theta0, 2)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other) and not np.allclose(first, full)


@pytest.mark.parametrize("loss", ["mse", "sigmoid_cross_entropy", "softmax_cross_entropy"])
def test_empirical_fisher_diagonal_matches_per_example_gradients(loss):
    problem, theta = random_problem(loss=loss, n=7, seed=2, l2=0.3)
    per_example = np.array([problem.subset([i]).grad(theta) - problem.l2 * theta
                            for i in range(problem.num_examples)])
    np.testing.assert_allclose(problem.empirical_fisher_diagonal(theta),
                               np.mean(per_example**2, axis=0), rtol=1e-10, atol=1e-14)


def test_bad_arguments_are_refused():
    with pytest.raises(UnknownNameError):
        HessianFree(curvature="fisher")
    with pytest.raises(ValueError):
        HessianFree(damping=-1.0)
    with pytest.raises(ValueError):
        HessianFree(cg_max_iters=0)
    with pytest.raises(ValueError):
        HessianFree(warm_start=1.0)
    with pytest.raises(ValueError):
        HessianFree(curvature_batch_size=0)
