"""Tests of Newton's method and its damped, saddle-free and Gauss-Newton repairs."""

import numpy as np
import pytest
import scipy.optimize

from mininn import MLP, Problem, fit
from mininn.errors import CurvatureError
from mininn.optim.newton import (
    DampedNewton,
    GaussNewton,
    Newton,
    SaddleFreeNewton,
)

DAMPED = [DampedNewton, SaddleFreeNewton, GaussNewton]


def logistic_problem(duplicate_column=False, l2=1e-2):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    if duplicate_column:
        X[:, 1] = X[:, 0]
    Y = ((X @ rng.normal(size=5) + rng.normal(size=200)) > 0).astype(float).reshape(-1, 1)
    return Problem(MLP([5, 1], activation="identity"), "sigmoid_cross_entropy", X, Y, l2=l2)


def relu_problem():
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, size=(40, 2))
    Y = np.sin(X[:, :1]) + 0.5 * X[:, 1:] ** 2
    return Problem(MLP([2, 6, 1]), "mse", X, Y)


def dead_theta(problem):
    """Parameters whose hidden ReLU units are all inactive on every example."""
    theta = problem.model.init(0)
    theta[problem.model.layout.layers[0].bias] = -100.0
    assert np.all(problem.model.forward_trace(theta, problem.X)[1][0] < 0)
    return theta


@pytest.fixture(scope="module")
def logistic():
    problem = logistic_problem()
    x0 = problem.model.init(0)
    reference = scipy.optimize.minimize(
        problem.value, x0, jac=problem.grad, hessp=lambda x, p: problem.hvp(x, p),
        method="trust-ncg", options={"gtol": 1e-12})
    assert np.linalg.norm(problem.grad(reference.x)) < 1e-8
    return problem, x0, reference.x, reference.fun


@pytest.mark.parametrize("optimizer, steps", [
    (Newton(), 8), (DampedNewton(), 40), (SaddleFreeNewton(), 20), (GaussNewton(), 20)])
def test_reaches_the_logistic_regression_optimum(logistic, optimizer, steps):
    problem, x0, theta_star, loss_star = logistic
    history = fit(problem, optimizer, x0, steps)
    assert np.linalg.norm(history.theta - theta_star) < 1e-6
    assert abs(problem.value(history.theta) - loss_star) < 1e-10


def test_newton_converges_quadratically(logistic):
    problem, x0, theta_star, _ = logistic
    optimizer, theta = Newton(), x0
    state, errors = optimizer.init(theta), [np.linalg.norm(x0 - theta_star)]
    for _ in range(5):
        theta, state, _ = optimizer.step(problem, theta, state)
        errors.append(np.linalg.norm(theta - theta_star))
    # each error is at most a constant times the square of the previous one
    ratios = [e1 / e0**2 for e0, e1 in zip(errors, errors[1:]) if e1 > 1e-7]
    assert len(ratios) >= 3 and max(ratios) < 1.0
    assert errors[-1] < 1e-6


def test_newton_refuses_a_hessian_with_zero_rows():
    problem = relu_problem()
    with pytest.raises(CurvatureError, match="singular") as error:
        Newton().step(problem, dead_theta(problem), Newton().init(None))
    message = str(error.value)
    # all weights and biases of the 6 dead units (2*6 + 6 + 6*1) have zero Hessian rows
    assert "24 of its 25 rows are exactly zero" in message
    assert all(fix in message for fix in ("DampedNewton", "SaddleFreeNewton", "GaussNewton"))


def test_newton_refuses_a_rank_deficient_hessian_without_zero_rows():
    problem = logistic_problem(duplicate_column=True, l2=0.0)
    theta = problem.model.init(0)
    assert np.all(problem.hessian(theta).any(axis=1))
    with pytest.raises(CurvatureError, match="singular to working precision"):
        Newton().step(problem, theta, Newton().init(theta))


def test_newton_reports_an_indefinite_hessian():
    problem = relu_problem()
    theta = problem.model.init(0)
    new, _, info = Newton().step(problem, theta, Newton().init(theta))
    eigenvalues = np.linalg.eigvalsh(problem.hessian(theta))
    assert info["indefinite"] is True
    assert info["num_negative_eigenvalues"] == np.sum(eigenvalues < 0) > 0
    assert info["min_eigenvalue"] == pytest.approx(eigenvalues[0])
    assert info["max_eigenvalue"] == pytest.approx(eigenvalues[-1])
    assert info["loss_after"] == pytest.approx(problem.value(new))
    assert np.all(np.isfinite(new))


@pytest.mark.parametrize("method", DAMPED)
def test_damped_methods_survive_dead_units(method):
    problem = relu_problem()
    theta = dead_theta(problem)
    history = fit(problem, method(), theta, 5)
    assert np.all(np.isfinite(history.theta))
    assert problem.value(history.theta) < problem.value(theta)
    assert np.all(np.diff(history.loss) <= 0)


@pytest.mark.parametrize("method", DAMPED)
@pytest.mark.parametrize("damping", [1e-12, 1e8])
def test_extreme_damping_never_increases_the_loss(method, damping):
    problem = relu_problem()
    optimizer = method(damping=damping, min_damping=1e-12)
    history = fit(problem, optimizer, problem.model.init(0), 8)
    losses = history.loss + [problem.value(history.theta)]
    assert np.all(np.isfinite(history.theta))
    assert np.all(np.diff(losses) <= 0) and losses[-1] < losses[0]
    for info in history.info:
        assert 1e-12 <= info["damping"] <= 1e8
        assert info["loss_after"] <= info["loss"]


def quadratic(scale=1.0):
    """f(x) = x.A.x / 2 and the arguments of damped_step with model curvature scale * A."""
    A = np.diag([1.0, 10.0])
    x = np.array([1.0, 1.0])
    eigenvalues, eigenvectors = np.linalg.eigh(A)
    return (lambda v: 0.5 * v @ A @ v), x, 0.5 * x @ A @ x, A @ x, scale * eigenvalues, eigenvectors


# With a model curvature c * A and tiny damping, rho = 2 - 1/c.
@pytest.mark.parametrize("scale, accepted, factor", [
    (1.0, True, 2 / 3),    # rho = 1: a very good step, lambda decreases
    (0.7, True, 1.0),      # rho = 0.57: lambda unchanged
    (0.55, True, 1.5),     # rho = 0.18: accepted, but lambda increases
    (0.4, False, 1.5),     # rho = -0.5: the loss rises, the step is rejected
])
def test_levenberg_marquardt_rule_on_a_quadratic(scale, accepted, factor):
    optimizer = DampedNewton(damping=1e-6, min_damping=1e-9, max_retries=0)
    value, x, loss, gradient, eigenvalues, eigenvectors = quadratic(scale)
    new, damping, info = optimizer.damped_step(value, x, loss, gradient, eigenvalues, eigenvectors, 1e-6)
    assert info["accepted"] is accepted
    assert info["rho"] == pytest.approx(2 - 1 / scale, rel=1e-4)
    assert damping == pytest.approx(1e-6 * factor)
    if accepted:
        assert value(new) == info["loss_after"] < loss
    else:
        assert new is x and info["loss_after"] == loss


def test_rejected_step_is_retried_with_more_damping():
    optimizer = DampedNewton(damping=0.1, max_retries=20)
    value, x, loss, gradient, eigenvalues, eigenvectors = quadratic(0.3)
    new, _, info = optimizer.damped_step(value, x, loss, gradient, eigenvalues, eigenvectors, 0.1)
    assert info["accepted"] and info["attempts"] > 1
    assert info["damping"] == pytest.approx(0.1 * 1.5 ** (info["attempts"] - 1))
    assert value(new) < loss


def test_non_finite_losses_are_rejected():
    optimizer = GaussNewton(max_retries=3)
    _, x, loss, gradient, eigenvalues, eigenvectors = quadratic()
    new, damping, info = optimizer.damped_step(
        lambda v: np.nan, x, loss, gradient, eigenvalues, eigenvectors, 1e-3)
    assert new is x and not info["accepted"] and info["attempts"] == 4
    assert damping == pytest.approx(1e-3 * 1.5**4)


def test_damping_is_raised_until_the_damped_hessian_is_positive_definite():
    optimizer = DampedNewton(damping=1e-6, min_damping=1e-9)
    A = np.diag([-2.0, 1.0])
    x = np.array([0.1, 1.0])
    new, _, info = optimizer.damped_step(
        lambda v: 0.5 * v @ A @ v, x, 0.5 * x @ A @ x, A @ x, np.diag(A), np.eye(2), 1e-6)
    assert info["accepted"] and info["damping"] > 2.0
    assert info["attempts"] == 1  # raising lambda for definiteness costs no evaluation


def test_saddle_free_newton_goes_downhill_where_newton_goes_uphill():
    problem = relu_problem()
    theta = problem.model.init(0)
    _, _, newton = Newton().step(problem, theta, Newton().init(theta))
    assert newton["indefinite"] and newton["loss_after"] > newton["loss"]
    optimizer = SaddleFreeNewton()
    new, _, info = optimizer.step(problem, theta, optimizer.init(theta))
    assert info["accepted"] and info["attempts"] == 1
    assert problem.value(new) == info["loss_after"] < info["loss"]


def absolute(matrix):
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.abs(eigenvalues)) @ eigenvectors.T


@pytest.mark.parametrize("method, curvature", [
    (SaddleFreeNewton, lambda problem, theta: absolute(problem.hessian(theta))),
    (GaussNewton, lambda problem, theta: problem.ggn(theta)),
])
def test_step_solves_the_damped_system_of_its_curvature(method, curvature):
    problem = relu_problem()
    theta = problem.model.init(0)
    optimizer = method(damping=0.1)
    new, _, info = optimizer.step(problem, theta, optimizer.init(theta))
    assert info["accepted"] and info["attempts"] == 1 and info["damping"] == 0.1
    expected = -np.linalg.solve(curvature(problem, theta) + 0.1 * np.eye(len(theta)),
                                problem.grad(theta))
    np.testing.assert_allclose(new - theta, expected, rtol=1e-8, atol=1e-12)


def test_invalid_damping_bounds():
    with pytest.raises(ValueError, match="min_damping <= damping"):
        DampedNewton(damping=1e-12)
    with pytest.raises(ValueError, match="positive"):
        GaussNewton(damping=0.0)
