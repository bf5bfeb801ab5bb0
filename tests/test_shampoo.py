"""Tests of Shampoo: a dense computation of its formulas, its one-output reduction, its symmetries."""

import numpy as np
import pytest
from helpers import LinearModel, random_problem
from scipy.linalg import fractional_matrix_power
from scipy.stats import ortho_group

from mininn import MLP, Problem, data
from mininn.errors import ArgumentError, UnknownNameError
from mininn.optim import Adam, Shampoo
from mininn.optim.shampoo import inverse_root


def run(optimizer, problem, theta, steps):
    state = optimizer.init(theta)
    thetas = [theta]
    for _ in range(steps):
        theta, state, _ = optimizer.step(problem, theta, state)
        thetas.append(theta)
    return thetas, state


def dense_root(matrix, eps):
    """(matrix + eps I)^(-1/4) by scipy's fractional power (Schur-Padé), not by eigh."""
    return np.real(fractional_matrix_power(matrix + eps * np.eye(len(matrix)), -0.25))


def dense_shampoo(problem, theta, steps, learning_rate, beta1, beta2, eps, inverse_every, graft):
    """The documented formulas, written out with Kronecker products on the flat gradient.

    With theta's layer slice the row-major vec of G, vec(L^a G R^b) = (L^a ⊗ (R^b)ᵀ) vec(G).
    """
    layout = problem.model.layout
    sums = {layer.index: (0.0, 0.0) for layer in layout}
    m, v, roots, thetas = np.zeros_like(theta), np.zeros_like(theta), {}, [theta]
    for t in range(1, steps + 1):
        g = problem.grad(theta)
        m = beta1 * m + (1 - beta1) * g
        m_hat = m / (1 - beta1**t)
        v = 0.999 * v + 0.001 * g**2
        adam = m_hat / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        update = np.empty_like(theta)
        for layer in layout:
            G = g[layer.params].reshape(layer.fan_in + 1, layer.fan_out)
            L, R = sums[layer.index]
            keep, weight = (1.0, 1.0) if beta2 is None else (beta2, 1 - beta2)
            L, R = keep * L + weight * G @ G.T, keep * R + weight * G.T @ G
            sums[layer.index] = (L, R)
            if (t - 1) % inverse_every == 0:
                correction = 1.0 if beta2 is None else 1 - beta2**t
                roots[layer.index] = (dense_root(L / correction, eps), dense_root(R / correction, eps))
            left, right = roots[layer.index]
            direction = np.kron(left, right.T) @ m_hat[layer.params]
            if graft:
                direction *= np.linalg.norm(adam[layer.params]) / np.linalg.norm(direction)
            update[layer.params] = -learning_rate * direction
        theta = theta + update
        thetas.append(theta)
    return thetas


# eps keeps the early, rank-deficient factors well conditioned, so that two ways of taking
# the root agree to rounding.
@pytest.mark.parametrize("options", [
    {"beta1": 0.0, "beta2": None, "eps": 1e-3, "inverse_every": 1, "graft": None},
    {"beta1": 0.9, "beta2": None, "eps": 1e-4, "inverse_every": 2, "graft": None},
    {"beta1": 0.9, "beta2": 0.95, "eps": 1e-3, "inverse_every": 3, "graft": "adam"},
])
def test_steps_match_a_dense_computation_of_the_formulas(options):
    problem, theta = random_problem(sizes=(3, 5, 4, 2), n=30, seed=1)
    learning_rate, steps = 0.05, 5
    thetas, _ = run(Shampoo(learning_rate, **options), problem, theta, steps)
    expected = dense_shampoo(problem, theta, steps, learning_rate, **options)
    for got, want in zip(thetas, expected):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)
    assert np.linalg.norm(thetas[-1] - theta) > 0.05


def test_one_output_column_is_full_matrix_adagrad_with_exponent_minus_a_quarter():
    # A layer with one output: R = Σ|g|² = tr L is a scalar, and the step is
    # -lr (L + eps I)^(-1/4) g / (tr L + eps)^(1/4), full-matrix Adagrad with -1/4 for -1/2.
    problem, theta = random_problem(sizes=(4, 1), activation="identity", n=20, seed=2)
    learning_rate, eps = 0.1, 1e-3
    thetas, state = run(Shampoo(learning_rate, beta1=0.0, eps=eps, inverse_every=1, graft=None),
                        problem, theta, 4)
    H = np.zeros((5, 5))
    for before, after in zip(thetas, thetas[1:]):
        g = problem.grad(before)  # the layer's 5 parameters: 4 weights (one column), then the bias
        H += np.outer(g, g)
        adagrad = -learning_rate * dense_root(H, eps) @ g / (np.trace(H) + eps) ** 0.25
        np.testing.assert_allclose(after - before, adagrad, rtol=1e-9, atol=1e-14)
    [(L, R)] = state.factors
    assert R.shape == (1, 1) and R[0, 0] == pytest.approx(np.trace(L), rel=1e-14)


def rotated_copy(model, theta, Q, V):
    """The same network for inputs X Q and outputs rotated by V: first W -> Qᵀ W; last W, b -> W V, b V."""
    params = model.layout.unflatten(theta)
    params[0] = (Q.T @ params[0][0], params[0][1])
    params[-1] = (params[-1][0] @ V, params[-1][1] @ V)
    return model.layout.flatten(params)


@pytest.mark.parametrize("optimizer, equivariant", [
    (Shampoo(0.05, graft=None, inverse_every=1), True),
    (Shampoo(0.05, beta2=0.9, eps=1e-6, graft=None, inverse_every=2), True),
    (Shampoo(0.05, graft="adam"), False),  # Adam's diagonal norm depends on the basis
    (Adam(0.05), False),
])
def test_steps_are_equivariant_under_rotations_of_inputs_and_outputs(optimizer, equivariant):
    # Rotating the inputs by Q and the targets by V (MSE is invariant) is the same problem in new
    # coordinates; L -> Qᵀ L Q and R -> Vᵀ R V, so Shampoo's step rotates with the parameters.
    problem, theta = random_problem(sizes=(3, 6, 2), n=25, seed=3)
    Q, V = ortho_group.rvs(3, random_state=0), ortho_group.rvs(2, random_state=1)
    rotated = Problem(problem.model, "mse", problem.X @ Q, problem.Y @ V)
    theta_rotated = rotated_copy(problem.model, theta, Q, V)
    np.testing.assert_allclose(rotated.outputs(theta_rotated), problem.outputs(theta) @ V, atol=1e-12)
    thetas, _ = run(optimizer, problem, theta, 3)
    rotated_thetas, _ = run(optimizer, rotated, theta_rotated, 3)
    gap = max(np.max(np.abs(rotated_copy(problem.model, a, Q, V) - b))
              for a, b in zip(thetas, rotated_thetas))
    assert (gap < 1e-10) == equivariant
    if not equivariant:
        assert gap > 1e-4


def test_inverse_roots_are_recomputed_every_inverse_every_steps():
    problem, theta = random_problem(sizes=(3, 5, 2), n=20)
    optimizer = Shampoo(inverse_every=2)
    state = optimizer.init(theta)
    roots = []
    for _ in range(4):
        theta, state, info = optimizer.step(problem, theta, state)
        roots.append(state.roots)
        assert info["step_size"] == optimizer.learning_rate and np.isnan(info["loss_after"])
    assert roots[1] is roots[0] and roots[2] is not roots[1] and roots[3] is roots[2]
    assert problem.counts == {"grad": 4}


def test_inverse_root_adds_eps_before_the_root():
    matrix = np.diag([4.0, 0.0])
    np.testing.assert_allclose(inverse_root(matrix, 12.0), np.diag([16.0**-0.25, 12.0**-0.25]), rtol=1e-14)
    rng = np.random.default_rng(0)
    B = rng.standard_normal((4, 6))
    np.testing.assert_allclose(inverse_root(B @ B.T, 1e-3), dense_root(B @ B.T, 1e-3), rtol=1e-10)


def test_shampoo_fits_relu_regression():
    X, Y = data.regression_1d()
    model = MLP([1, 16, 16, 1])
    problem, theta0 = Problem(model, "mse", X, Y), model.init(0)
    thetas, _ = run(Shampoo(1e-2), problem, theta0, 100)
    assert problem.value(thetas[-1]) < problem.value(theta0) / 5


def test_non_mlp_model_is_refused_clearly():
    problem = Problem(LinearModel(), "mse", np.ones((4, 3)), np.ones((4, 1)))
    optimizer = Shampoo()
    with pytest.raises(TypeError, match="Shampoo needs a mininn.MLP, got LinearModel"):
        optimizer.step(problem, np.zeros(3), optimizer.init(np.zeros(3)))


@pytest.mark.parametrize("options, error", [
    ({"learning_rate": 0.0}, ArgumentError),
    ({"beta1": 1.0}, ArgumentError),
    ({"beta2": 1.0}, ArgumentError),
    ({"eps": 0.0}, ArgumentError),
    ({"inverse_every": 0}, ArgumentError),
    ({"graft": "sgd"}, UnknownNameError),
    ({"graft_eps": -1.0}, ArgumentError),
])
def test_hyperparameters_are_validated(options, error):
    with pytest.raises(error):
        Shampoo(**options)
