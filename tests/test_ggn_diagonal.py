"""The Gauss-Newton diagonal by backpropagation, against the dense matrices and per-example gradients."""

import numpy as np
import pytest
from autograd import grad
from helpers import random_problem, relative_error

from mininn import curvature
from mininn.errors import ArgumentError, UnsupportedModelError

LOSSES = {"mse": 2, "sigmoid_cross_entropy": 2, "softmax_cross_entropy": 3}


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation, output", [
    ("relu", "identity"), ("leaky_relu", "identity"), ("identity", "identity"), ("tanh", "identity"),
    ("softplus", "identity"), ("relu", "sigmoid"), ("tanh", "tanh"),
])
def test_equals_the_diagonal_of_the_dense_gauss_newton_matrix(loss, activation, output):
    problem, theta = random_problem((3, 4, 5, LOSSES[loss]), activation, loss, n=25, seed=3, l2=1e-3,
                                    output=output)
    diagonal = problem.ggn_diagonal(theta)
    assert relative_error(diagonal, np.diag(problem.ggn(theta))) <= 1e-12
    assert np.all(diagonal >= problem.l2)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "identity"])
def test_with_piecewise_linear_layers_and_a_linear_output_it_is_the_hessians_diagonal(loss, activation):
    problem, theta = random_problem((3, 4, 5, LOSSES[loss]), activation, loss, n=25, seed=4, l2=1e-3)
    _, preactivations = problem.model.forward_trace(theta, problem.X)
    assert min(np.min(np.abs(z)) for z in preactivations[:-1]) > 1e-6  # away from the kinks
    assert relative_error(problem.ggn_diagonal(theta), np.diag(problem.hessian(theta))) <= 1e-12


@pytest.mark.parametrize("activation, output", [("tanh", "identity"), ("softplus", "identity"),
                                                ("relu", "sigmoid")])
def test_a_curved_hidden_activation_or_output_breaks_the_equality_with_the_hessian(activation, output):
    problem, theta = random_problem((3, 4, 5, 2), activation, "mse", n=25, seed=4, output=output)
    assert relative_error(problem.ggn_diagonal(theta), np.diag(problem.hessian(theta))) > 1e-3


def test_the_curvature_function_leaves_out_the_l2_term():
    problem, theta = random_problem(loss="softmax_cross_entropy", l2=0.5)
    bare = curvature.ggn_diagonal(problem.model, theta, problem.X, problem.loss, problem.Y)
    np.testing.assert_allclose(problem.ggn_diagonal(theta), bare + 0.5, rtol=1e-15)


def per_example_gradients(problem, theta, targets):
    """Row i: the gradient of example i's loss at the given targets (autograd, one example at a time)."""
    def example_loss(parameters, i):
        outputs = problem.model.forward(parameters, problem.X[i:i + 1])
        return problem.loss.value(outputs, targets[i:i + 1])

    return np.stack([grad(example_loss)(theta, i) for i in range(problem.num_examples)])


@pytest.mark.parametrize("loss", LOSSES)
def test_monte_carlo_squares_per_example_gradients_at_sampled_targets(loss):
    problem, theta = random_problem((3, 4, LOSSES[loss]), "relu", loss, n=15, seed=5)
    rng = np.random.default_rng(7)
    outputs = problem.outputs(theta)
    squares = [np.mean(per_example_gradients(problem, theta, problem.loss.sample_targets(outputs, rng)) ** 2,
                       axis=0) for _ in range(3)]
    estimate = problem.ggn_diagonal(theta, samples=3, rng=7)
    assert relative_error(estimate, np.mean(squares, axis=0)) <= 1e-12


@pytest.mark.parametrize("loss", LOSSES)
def test_monte_carlo_error_shrinks_like_one_over_the_square_root_of_the_samples(loss):
    problem, theta = random_problem((3, 6, LOSSES[loss]), "relu", loss, n=40, seed=6)
    exact = problem.ggn_diagonal(theta)

    def mean_error(samples):
        return np.mean([np.linalg.norm(problem.ggn_diagonal(theta, samples, rng=seed) - exact)
                        for seed in range(3)]) / np.linalg.norm(exact)

    few, many = mean_error(10), mean_error(640)  # 64 times the samples: 8 times smaller, if unbiased
    assert many < 0.05 and 4 < few / many < 16


def test_counted_once_per_call_and_validated():
    problem, theta = random_problem()
    problem.ggn_diagonal(theta)
    problem.ggn_diagonal(theta, samples=2)
    assert problem.counts == {"ggn_diagonal": 2}
    with pytest.raises(ArgumentError, match="samples"):
        problem.ggn_diagonal(theta, samples=0)


def test_needs_an_mlp():
    problem, theta = random_problem()

    class Wrapped:
        num_params = problem.model.num_params

    with pytest.raises(UnsupportedModelError, match="Gauss-Newton diagonal"):
        curvature.ggn_diagonal(Wrapped(), theta, problem.X, problem.loss, problem.Y)
