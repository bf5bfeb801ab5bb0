"""The details that make each second-order method what it is: damping rules, the model behind rho,
warm starts, curvature minibatches, moving averages, scaling of the L-BFGS recursion."""

import numpy as np
import pytest
from helpers import linear_regression  # least squares: every quadratic model is exact

import mininn.optim.hessian_free as hessian_free_module
from mininn import MLP, Problem, data
from mininn.curvature import kfac_factors
from mininn.optim import KFAC, Adadelta, HessianFree
from mininn.optim.damping import levenberg_marquardt
from mininn.optim.lbfgs import two_loop_recursion, wolfe_line_search
from mininn.optim.newton import DampedNewton


def small_relu(seed=0, n=30):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    problem = Problem(MLP([3, 6, 2]), "mse", X, rng.standard_normal((n, 2)))
    return problem, problem.model.init(seed)


@pytest.mark.parametrize("rho, factor", [(np.nan, 1.5), (-1.0, 1.5), (0.2499, 1.5), (0.25, 1.0),
                                         (0.5, 1.0), (0.75, 1.0), (0.7501, 2 / 3), (3.0, 2 / 3)])
def test_levenberg_marquardt_thresholds(rho, factor):
    assert levenberg_marquardt(1.0, rho) == pytest.approx(factor)


def test_damped_newton_rho_uses_the_undamped_model():
    # On a quadratic the undamped model is exact, so rho = 1 whatever the damping.
    A, x = np.diag([1.0, 10.0]), np.array([1.0, 1.0])
    eigenvalues, eigenvectors = np.linalg.eigh(A)
    _, _, info = DampedNewton(damping=1.0, max_retries=0).damped_step(
        lambda v: 0.5 * v @ A @ v, x, 0.5 * x @ A @ x, A @ x, eigenvalues, eigenvectors, 1.0)
    assert info["rho"] == pytest.approx(1.0, rel=1e-12)


def test_hessian_free_rho_uses_the_undamped_model():
    problem, _ = linear_regression()
    optimizer = HessianFree(damping=1.0, adapt_damping=False, line_search=False, martens_stop=False)
    _, _, info = optimizer.step(problem, np.zeros(4), optimizer.init(np.zeros(4)))
    assert info["accepted"] and info["rho"] == pytest.approx(1.0, rel=1e-10)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_kfac_rho_is_one_on_a_quadratic(momentum):
    problem, _ = linear_regression()
    optimizer = KFAC(damping=1.0, fisher="exact", momentum=momentum)
    theta, state = np.zeros(4), optimizer.init(np.zeros(4))
    accepted = 0
    for _ in range(3):
        theta, state, info = optimizer.step(problem, theta, state)
        if info["accepted"]:
            accepted += 1
            assert info["rho"] == pytest.approx(1.0, rel=1e-9)
    assert accepted > 0


def test_hessian_free_warm_start_is_the_decayed_final_cg_solution(monkeypatch):
    calls = []  # (x0 passed to CG, CG's result)
    solve = hessian_free_module.conjugate_gradient

    def recording(*args, **kwargs):
        result = solve(*args, **kwargs)
        calls.append((kwargs["x0"], result))
        return result

    monkeypatch.setattr(hessian_free_module, "conjugate_gradient", recording)
    X = data.curves(200, seed=0, size=8)
    model = MLP([64, 32, 16, 4, 16, 32, 64])
    problem, theta = Problem(model, "sigmoid_cross_entropy", X, X), model.init(0)
    optimizer = HessianFree(warm_start=0.5, cg_max_iters=100, martens_stop=False, line_search=False)
    state, took_an_earlier_iterate = optimizer.init(theta), False
    for _ in range(3):
        theta, state, info = optimizer.step(problem, theta, state)
        took_an_earlier_iterate |= info["backtrack_index"] < info["cg_iterations"]
    assert took_an_earlier_iterate and calls[0][0] is None  # the final x, not the backtracked one
    for (_, previous), (x0, _) in zip(calls, calls[1:]):
        np.testing.assert_array_equal(x0, 0.5 * previous.x)


def test_hessian_free_curvature_batch_changes_each_step(monkeypatch):
    problem, theta = small_relu()
    seeds = []
    minibatch = Problem.minibatch

    def recording(self, size, seed=0):
        seeds.append(seed)
        return minibatch(self, size, seed)

    monkeypatch.setattr(Problem, "minibatch", recording)
    optimizer = HessianFree(curvature_batch_size=10, seed=5)
    state = optimizer.init(theta)
    for _ in range(3):
        theta, state, _ = optimizer.step(problem, theta, state)
    assert seeds == [5, 6, 7]


def test_hessian_free_without_preconditioner_computes_no_fisher_diagonal():
    problem, theta = small_relu()
    optimizer = HessianFree(preconditioner=False)
    optimizer.step(problem, theta, optimizer.init(theta))
    assert problem.counts["fisher_diagonal"] == 0


def test_kfac_moving_average_is_capped_by_ema_decay():
    problem, theta = small_relu(n=15)
    optimizer = KFAC(learning_rate=1e-3, ema_decay=0.5, seed=4)
    state, thetas = optimizer.init(theta), [theta]
    for _ in range(3):
        theta, state, _ = optimizer.step(problem, theta, state)
        thetas.append(theta)
    factors = [kfac_factors(problem.model, point, problem.X, problem.loss, rng=np.random.default_rng([4, t]))
               for t, point in enumerate(thetas[:3])]
    for layer, (A, _) in enumerate(state.factors):  # weights min(0.5, 1 - 1/t): 1, then 1/2, 1/2
        expected = 0.25 * factors[0][layer][0] + 0.25 * factors[1][layer][0] + 0.5 * factors[2][layer][0]
        np.testing.assert_allclose(A, expected, atol=1e-13)


def test_adadelta_second_step_matches_the_recurrence():
    problem, _ = linear_regression()
    learning_rate, rho, eps = 0.7, 0.9, 1e-4
    optimizer = Adadelta(learning_rate, rho, eps)
    theta = np.random.default_rng(1).standard_normal(4)
    g = problem.grad(theta)
    theta1, state, _ = optimizer.step(problem, theta, optimizer.init(theta))
    g1 = problem.grad(theta1)
    second1 = (1 - rho) * g**2
    update_moment1 = (1 - rho) * (np.sqrt(eps) / np.sqrt(second1 + eps) * g) ** 2
    second2 = rho * second1 + (1 - rho) * g1**2
    update = -np.sqrt(update_moment1 + eps) / np.sqrt(second2 + eps) * g1
    theta2, _, _ = optimizer.step(problem, theta1, state)
    np.testing.assert_allclose(theta2, theta1 + learning_rate * update, rtol=1e-13)


def test_two_loop_recursion_equals_bfgs_from_the_newest_pairs_scale():
    rng = np.random.default_rng(0)
    A = np.diag([1.0, 3.0, 7.0, 20.0])
    # pairs with different scales s.y / y.y, so that the initial scaling is identified
    pairs = [(s, scale * (A @ s)) for s, scale in zip(rng.normal(size=(3, 4)), [1.0, 0.3, 2.0])]
    s, y = pairs[-1]
    H = (s @ y) / (y @ y) * np.eye(4)
    for s, y in pairs:
        r = 1 / (y @ s)
        V = np.eye(4) - r * np.outer(y, s)
        H = V.T @ H @ V + r * np.outer(s, s)
    g = rng.normal(size=4)
    np.testing.assert_allclose(two_loop_recursion(g, pairs), H @ g, rtol=1e-12)


def test_line_search_zoom_interpolates_a_quadratic_exactly():
    def value_and_grad(x):
        return (x[0] - 0.3) ** 2, np.array([2 * (x[0] - 0.3)])

    theta = np.zeros(1)
    loss, gradient = value_and_grad(theta)
    result = wolfe_line_search(value_and_grad, theta, loss, gradient, np.array([1.0]), c1=1e-4, c2=0.1)
    assert result.success and result.evaluations == 2
    assert result.step_size == pytest.approx(0.3, abs=1e-12)


def test_line_search_does_not_count_overflowing_trials_as_evaluations():
    calls = []

    def value_and_grad(x):  # linear, and finite near the largest floats
        calls.append(x)
        return float(np.sum(1e-10 * x)), np.full_like(x, 1e-10)

    theta = np.full(2, -1.7e308)
    loss, gradient = value_and_grad(theta)
    calls.clear()
    result = wolfe_line_search(value_and_grad, theta, loss, gradient, -np.ones(2), initial_step=1e308)
    assert len(calls) < 20  # some trials overflowed and were never evaluated
    assert result.evaluations == len(calls)
