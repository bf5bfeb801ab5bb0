"""The natural-gradient step: a direct dense solve, and invariance under reparametrisation."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import jacobian
from helpers import random_problem

from mininn import MLP, Problem
from mininn.curvature import jacobian_vector_product
from mininn.errors import TooLargeError
from mininn.optim import SGD, NaturalGradient


def one_step(optimizer, problem, theta):
    new, _, info = optimizer.step(problem, theta, optimizer.init(theta))
    assert info.accepted
    return new


def test_the_step_solves_the_damped_fisher_system():
    problem, theta = random_problem((3, 4, 3), "tanh", "softmax_cross_entropy", n=20, seed=1, l2=1e-3)
    n, k = problem.num_examples, 3
    J = jacobian(problem.outputs)(theta).reshape(n * k, -1)  # row i k + j: output j of example i
    p = np.exp(problem.outputs(theta))
    p /= p.sum(axis=1, keepdims=True)
    H = np.zeros((n * k, n * k))  # the softmax cross-entropy's output Hessian, block diagonal
    for i in range(n):
        H[i * k:(i + 1) * k, i * k:(i + 1) * k] = (np.diag(p[i]) - np.outer(p[i], p[i])) / n
    fisher = J.T @ H @ J + problem.l2 * np.eye(len(theta))
    expected = theta - 0.5 * np.linalg.solve(fisher + 0.1 * np.eye(len(theta)), problem.grad(theta))
    np.testing.assert_allclose(one_step(NaturalGradient(0.5, damping=0.1), problem, theta), expected,
                               rtol=1e-10, atol=1e-12)


class Reparametrised:
    """The model of the parameters phi with theta = A phi: ``forward(phi, X) = model.forward(A phi, X)``."""

    def __init__(self, model, A):
        self.model, self.A = model, A
        self.num_params, self.output_dim = model.num_params, model.output_dim

    def check_inputs(self, X):
        self.model.check_inputs(X)

    def forward(self, phi, X):
        return self.model.forward(anp.dot(self.A, phi), X)


def relative_difference(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_under_a_linear_reparametrisation_the_natural_step_moves_the_function_the_same_way():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 3))
    Y = (rng.random((40, 2)) < 0.5).astype(float)
    model = MLP([3, 2], activation="identity")  # logistic regression: N = 8 parameters
    problem, theta = Problem(model, "sigmoid_cross_entropy", X, Y), model.init(2)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    A = q * np.logspace(-1, 1, 8)  # invertible, condition number 100
    phi = np.linalg.solve(A, theta)
    reparametrised = Problem(Reparametrised(model, A), "sigmoid_cross_entropy", X, Y)
    np.testing.assert_allclose(reparametrised.outputs(phi), problem.outputs(theta), rtol=1e-12)

    def change(optimizer):
        """The change of the outputs after one step in theta and in phi."""
        return [task.outputs(one_step(optimizer, task, point)) - task.outputs(point)
                for task, point in ((problem, theta), (reparametrised, phi))]

    assert relative_difference(*change(NaturalGradient(0.5, damping=1e-12))) < 1e-8
    assert relative_difference(*change(SGD(0.5))) > 0.1


def test_rescaling_relu_units_changes_neither_the_function_nor_the_natural_steps_first_order_effect():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 2))
    Y = np.sin(X[:, :1]) + X[:, 1:] ** 2
    model = MLP([2, 5, 1], activation="relu")
    problem, theta = Problem(model, "mse", X, Y), model.init(3)
    scale = np.ones_like(theta)  # layer 1 (weights and biases) times c, layer 2 weights divided by c
    first, second = model.layout
    scale[first.params], scale[second.weight] = 3.0, 1 / 3.0
    rescaled = scale * theta
    np.testing.assert_allclose(problem.outputs(rescaled), problem.outputs(theta), rtol=1e-12)

    def first_order_change(optimizer):
        """J (new - old) at theta and at the rescaled point: the linearised change of the outputs."""
        return [jacobian_vector_product(problem.outputs, point, one_step(optimizer, problem, point) - point)
                for point in (theta, rescaled)]

    assert relative_difference(*first_order_change(NaturalGradient(0.1, damping=1e-10))) < 1e-6
    assert relative_difference(*first_order_change(SGD(0.1))) > 0.1


def test_refuses_problems_too_large_for_a_dense_fisher():
    problem, theta = random_problem(dense_limit=10)
    with pytest.raises(TooLargeError, match="dense ggn"):
        NaturalGradient().step(problem, theta, NaturalGradient().init(theta))


def test_a_step_that_raises_the_loss_is_rejected():
    problem, theta = random_problem((3, 4, 2), "tanh", "mse", seed=4)
    new, _, info = NaturalGradient(learning_rate=1e3).step(problem, theta, NaturalGradient().init(theta))
    assert not info.accepted and info.step_size == 0 and info.loss_after == info.loss
    np.testing.assert_array_equal(new, theta)
