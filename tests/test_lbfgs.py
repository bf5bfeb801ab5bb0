"""Tests of L-BFGS and its strong-Wolfe line search."""

import numpy as np
import pytest
import scipy.optimize

from mininn import MLP, Problem, fit
from mininn.optim.lbfgs import LBFGS, two_loop_recursion, wolfe_line_search

C1, C2 = 1e-4, 0.9


def logistic_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    Y = ((X @ rng.normal(size=5) + rng.normal(size=200)) > 0).astype(float).reshape(-1, 1)
    return Problem(MLP([5, 1], activation="identity"), "sigmoid_cross_entropy", X, Y, l2=1e-2)


def rosenbrock(x):
    value = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
    gradient = np.array([-400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0]), 200 * (x[1] - x[0] ** 2)])
    return value, gradient


def assert_strong_wolfe(value_and_grad, theta, new_theta):
    """Both strong Wolfe inequalities for the step s = new_theta - theta (scale-free form)."""
    loss, gradient = value_and_grad(theta)
    new_loss, new_gradient = value_and_grad(new_theta)
    s = new_theta - theta
    assert gradient @ s < 0
    assert new_loss <= loss + C1 * (gradient @ s)
    assert abs(new_gradient @ s) <= C2 * abs(gradient @ s)


@pytest.mark.parametrize("start", [[-1.2, 1.0], [0.0, 0.0], [2.0, 2.0], [-0.5, 3.0]])
@pytest.mark.parametrize("initial_step", [1e-4, 1.0, 10.0])
def test_line_search_satisfies_strong_wolfe_on_rosenbrock(start, initial_step):
    theta = np.array(start)
    loss, gradient = rosenbrock(theta)
    result = wolfe_line_search(rosenbrock, theta, loss, gradient, -gradient, C1, C2,
                               initial_step=initial_step)
    assert result.success and result.evaluations <= 20
    new_theta = theta - result.step_size * gradient
    assert_strong_wolfe(rosenbrock, theta, new_theta)
    np.testing.assert_allclose(result.gradient, rosenbrock(new_theta)[1])
    assert result.loss == rosenbrock(new_theta)[0]


def test_line_search_fails_cleanly():
    theta = np.array([-1.2, 1.0])
    loss, gradient = rosenbrock(theta)
    uphill = wolfe_line_search(rosenbrock, theta, loss, gradient, gradient)
    assert not uphill.success and uphill.evaluations == 0 and uphill.step_size == 0
    short = wolfe_line_search(rosenbrock, theta, loss, gradient, -gradient, max_evaluations=1)
    assert not short.success and short.evaluations == 1 and short.loss == loss


def test_lbfgs_steps_satisfy_strong_wolfe():
    problem = logistic_problem()
    optimizer = LBFGS()
    theta = problem.model.init(0)
    state = optimizer.init(theta)
    for _ in range(6):
        new, state, info = optimizer.step(problem, theta, state)
        assert info["accepted"] and info["step_size"] > 0
        assert_strong_wolfe(problem.value_and_grad, theta, new)
        theta = new


def test_lbfgs_reaches_the_logistic_regression_optimum():
    problem = logistic_problem()
    x0 = problem.model.init(0)
    reference = scipy.optimize.minimize(
        problem.value, x0, jac=problem.grad, hessp=lambda x, p: problem.hvp(x, p),
        method="trust-ncg", options={"gtol": 1e-12})
    history = fit(problem, LBFGS(), x0, 25)
    assert np.linalg.norm(history.theta - reference.x) < 1e-6
    assert abs(problem.value(history.theta) - reference.fun) < 1e-10
    assert np.all(np.diff(history.loss) <= 0)


def test_lbfgs_minimises_a_convex_quadratic():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 8)) * np.logspace(0, 1, 8)  # Hessian condition number about 130
    Y = rng.normal(size=(50, 1))
    problem = Problem(MLP([8, 1], activation="identity"), "mse", X, Y)
    solution = np.linalg.lstsq(np.hstack([X, np.ones((50, 1))]), Y[:, 0], rcond=None)[0]
    history = fit(problem, LBFGS(), problem.model.init(0), 60)
    assert np.linalg.norm(history.theta - solution) < 1e-7


def test_memory_never_exceeds_history():
    problem = logistic_problem()
    optimizer = LBFGS(history=3)
    theta = problem.model.init(0)
    state, sizes = optimizer.init(theta), []
    for _ in range(10):
        theta, state, info = optimizer.step(problem, theta, state)
        assert info["memory"] == len(state.pairs)
        sizes.append(len(state.pairs))
    assert sizes[:4] == [1, 2, 3, 3] and max(sizes) == 3


def test_two_loop_recursion_is_a_secant_symmetric_positive_definite_operator():
    rng = np.random.default_rng(3)
    A = np.diag([1.0, 2.0, 5.0])
    steps = list(rng.normal(size=(3, 3)))
    pairs = [(s, A @ s) for s in steps]
    s, y = pairs[-1]  # the secant equation H y = s holds for the newest pair
    np.testing.assert_allclose(two_loop_recursion(y, pairs), s)
    gradient = rng.normal(size=3)
    H = np.column_stack([two_loop_recursion(e, pairs) for e in np.eye(3)])
    np.testing.assert_allclose(H, H.T, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(H) > 0) and gradient @ two_loop_recursion(gradient, pairs) > 0
    np.testing.assert_allclose(two_loop_recursion(gradient, []), gradient)


def test_failed_line_search_falls_back_to_steepest_descent():
    problem = logistic_problem()
    theta = problem.model.init(0)
    optimizer = LBFGS(max_line_search=1)
    u = np.ones_like(theta) / np.sqrt(len(theta))
    # a pair whose initial scaling s.y / y.y = 1e6 makes the unit quasi-Newton step far too long
    state = optimizer.init(theta)._replace(pairs=((1e3 * u, 1e-3 * u),))
    new, state, info = optimizer.step(problem, theta, state)
    assert info["steepest_descent"] and info["accepted"] and info["line_search_evals"] == 2
    assert problem.value(new) < info["loss"]
    assert state.pairs[0][0] == pytest.approx(new - theta)


def test_rejected_step_keeps_theta():
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, size=(40, 2))
    problem = Problem(MLP([2, 6, 1]), "mse", X, np.sin(X[:, :1]) + 0.5 * X[:, 1:] ** 2)
    theta = problem.model.init(0)
    optimizer = LBFGS(max_line_search=1)
    new, state, info = optimizer.step(problem, theta, optimizer.init(theta))
    assert new is theta and not info["accepted"] and info["step_size"] == 0
    assert state.pairs == () and info["loss"] == info["loss_after"] == problem.value(theta)


def test_cached_gradient_is_reused_only_for_the_same_problem_and_theta():
    problem = logistic_problem()
    theta = problem.model.init(0)
    optimizer = LBFGS()
    theta, state, info = optimizer.step(problem, theta, optimizer.init(theta))
    grads = problem.counts["grad"]
    _, _, info = optimizer.step(problem, theta, state)
    assert problem.counts["grad"] - grads == info["line_search_evals"]
    other = problem.subset(np.arange(100))
    _, _, info = optimizer.step(other, theta, state)
    assert info["loss"] == pytest.approx(other.value(theta))


def test_invalid_wolfe_constants():
    with pytest.raises(ValueError, match="0 < c1 < c2 < 1"):
        LBFGS(c1=0.9, c2=0.1)
