"""Tests of mininn.Problem: objective, gradient, curvature products, counting, data handling."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import hessian, jacobian
from helpers import fd_grad, fd_hessian, fd_jacobian, random_problem

from mininn import MLP, Problem
from mininn.curvature import HVP_METHODS, layer_blocks
from mininn.errors import NonFiniteError, ShapeError, TooLargeError, UnknownNameError
from mininn.losses import LOSSES
from mininn.problem import DENSE_LIMIT

LOSS_NAMES = sorted(LOSSES)


def independent_ggn(problem, theta):
    """J^T H_L J + l2 I from autograd's Jacobian of the outputs and Hessian of the loss in F."""
    F = problem.outputs(theta)
    n, k = F.shape
    J = jacobian(problem.outputs)(theta).reshape(n * k, problem.num_params)
    H_L = hessian(lambda f: problem.loss.value(anp.reshape(f, (n, k)), problem.Y))(F.ravel())
    return J.T @ H_L @ J + problem.l2 * np.eye(problem.num_params)


# ------------------------------------------------------------------- objective


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_value_and_gradient_match_formula_and_finite_differences(activation, loss):
    problem, theta = random_problem(activation=activation, loss=loss, l2=0.1, seed=1)
    expected = problem.loss(problem.model.forward(theta, problem.X), problem.Y) + 0.05 * theta @ theta
    assert problem.value(theta) == pytest.approx(expected, rel=1e-13)
    assert isinstance(problem.value(theta), float)
    value, g = problem.value_and_grad(theta)
    assert value == pytest.approx(expected, rel=1e-13)
    assert g.shape == (problem.num_params,)
    np.testing.assert_array_equal(problem.grad(theta), g)
    np.testing.assert_allclose(g, fd_grad(problem.value, theta), rtol=1e-6, atol=1e-8)


def test_outputs_are_the_model_outputs():
    problem, theta = random_problem(seed=2)
    np.testing.assert_array_equal(problem.outputs(theta), problem.model.forward(theta, problem.X))
    assert problem.outputs(theta).shape == (problem.num_examples, 2)


def test_accepts_integer_data_and_lists_as_float():
    model = MLP([2, 3, 1])
    problem = Problem(model, "mse", [[0, 1], [1, 0], [2, 2]], [[1], [0], [3]])
    assert problem.X.dtype == np.float64 and problem.Y.dtype == np.float64
    assert problem.num_examples == 3 and problem.num_params == 13
    assert "n=3" in repr(problem) and "N=13" in repr(problem)


# ------------------------------------------------------------------- curvature


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_dense_hessian_matches_finite_differences_of_the_gradient(activation, loss):
    problem, theta = random_problem(activation=activation, loss=loss, seed=3, l2=0.05)
    H = problem.hessian(theta)
    assert H.shape == (problem.num_params, problem.num_params)
    np.testing.assert_allclose(H, fd_hessian(problem.grad, theta), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", HVP_METHODS)
@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_hvp_matches_dense_hessian(activation, loss, method):
    problem, theta = random_problem(activation=activation, loss=loss, seed=4, l2=0.01)
    H = problem.hessian(theta)
    rng = np.random.default_rng(5)
    for _ in range(3):
        v = rng.standard_normal(problem.num_params)
        np.testing.assert_allclose(problem.hvp(theta, v, method=method), H @ v, rtol=1e-10,
                                   atol=1e-12)


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_hvp_operator_matches_dense_hessian(loss):
    problem, theta = random_problem(loss=loss, seed=6, l2=0.02)
    H = problem.hessian(theta)
    product = problem.hvp_operator(theta)
    for v in np.random.default_rng(7).standard_normal((3, problem.num_params)):
        np.testing.assert_allclose(product(v), H @ v, rtol=1e-10, atol=1e-12)


def test_hvp_unknown_method_raises():
    problem, theta = random_problem(seed=8)
    with pytest.raises(UnknownNameError, match="fwd_rev"):
        problem.hvp(theta, theta, method="finite_differences")


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_dense_ggn_equals_jacobian_form(activation, loss):
    problem, theta = random_problem(activation=activation, loss=loss, seed=9, l2=0.03)
    G = problem.ggn(theta)
    np.testing.assert_allclose(G, independent_ggn(problem, theta), rtol=1e-10, atol=1e-12)


def test_autograd_jacobian_used_for_ggn_matches_finite_differences():
    problem, theta = random_problem(activation="relu", seed=10, n=6)
    J = jacobian(problem.outputs)(theta).reshape(-1, problem.num_params)
    np.testing.assert_allclose(J, fd_jacobian(problem.outputs, theta), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_ggn_vp_and_operator_match_dense_ggn(activation, loss):
    problem, theta = random_problem(activation=activation, loss=loss, seed=11, l2=0.03)
    G = independent_ggn(problem, theta)
    product = problem.ggn_operator(theta)
    for v in np.random.default_rng(12).standard_normal((3, problem.num_params)):
        np.testing.assert_allclose(problem.ggn_vp(theta, v), G @ v, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(product(v), G @ v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_ggn_is_symmetric_psd_and_hessian_is_indefinite(activation, loss):
    problem, theta = random_problem(activation=activation, loss=loss, seed=13)
    G, H = problem.ggn(theta), problem.hessian(theta)
    np.testing.assert_allclose(G, G.T, rtol=0, atol=1e-12)
    assert np.linalg.eigvalsh(G).min() >= -1e-10
    assert np.linalg.eigvalsh((H + H.T) / 2).min() < -1e-6  # H itself is not PSD


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_same_layer_hessian_blocks_equal_gauss_newton_blocks_for_piecewise_linear_nets(
        activation, loss):
    problem, theta = random_problem(sizes=(3, 5, 4, 2), activation=activation, loss=loss,
                                    n=30, seed=14)
    assert problem.model.is_piecewise_linear
    H = layer_blocks(problem.hessian(theta), problem.model.layout)
    G = layer_blocks(problem.ggn(theta), problem.model.layout)
    cross_layer_gaps = []
    for i in range(3):
        for j in range(3):
            gap = np.max(np.abs(H[i][j] - G[i][j]))
            if i == j:
                assert gap <= 1e-10, f"same-layer block {i} differs by {gap:.2e}"
                assert np.max(np.abs(G[i][i])) > 1e-2  # ... and is not trivially zero
            else:
                cross_layer_gaps.append(gap)
    assert max(cross_layer_gaps) > 1e-3


@pytest.mark.parametrize("loss", ["mse", "sigmoid_cross_entropy"])
def test_same_layer_blocks_differ_for_a_smooth_activation(loss):
    problem, theta = random_problem(sizes=(3, 5, 4, 2), activation="tanh", loss=loss, n=30,
                                    seed=14)
    assert not problem.model.is_piecewise_linear
    H = layer_blocks(problem.hessian(theta), problem.model.layout)
    G = layer_blocks(problem.ggn(theta), problem.model.layout)
    same_layer_gaps = [np.max(np.abs(H[i][i] - G[i][i])) for i in range(2)]
    assert max(same_layer_gaps) > 1e-3
    # the last layer enters the (linear-output) network linearly, so its block still agrees
    np.testing.assert_allclose(H[2][2], G[2][2], atol=1e-10)


def test_l2_adds_multiple_of_identity():
    plain, theta = random_problem(seed=15)
    penalised = Problem(plain.model, plain.loss, plain.X, plain.Y, l2=0.3)
    eye = np.eye(plain.num_params)
    np.testing.assert_allclose(penalised.hessian(theta) - plain.hessian(theta), 0.3 * eye,
                               atol=1e-12)
    np.testing.assert_allclose(penalised.ggn(theta) - plain.ggn(theta), 0.3 * eye, atol=1e-12)
    v = np.random.default_rng(16).standard_normal(plain.num_params)
    np.testing.assert_allclose(penalised.hvp(theta, v) - plain.hvp(theta, v), 0.3 * v, atol=1e-12)
    np.testing.assert_allclose(penalised.ggn_vp(theta, v) - plain.ggn_vp(theta, v), 0.3 * v,
                               atol=1e-12)
    np.testing.assert_allclose(penalised.grad(theta) - plain.grad(theta), 0.3 * theta, atol=1e-12)
    assert penalised.value(theta) - plain.value(theta) == pytest.approx(0.15 * theta @ theta)


# --------------------------------------------------------------------- counting


def test_counts_increase_as_documented():
    problem, theta = random_problem(seed=17)
    N = problem.num_params
    v = np.ones(N)
    assert sum(problem.counts.values()) == 0
    problem.value(theta)
    assert problem.counts == {"value": 1}
    problem.value_and_grad(theta)
    problem.grad(theta)
    assert problem.counts["grad"] == 2 and problem.counts["value"] == 1
    for method in HVP_METHODS:
        problem.hvp(theta, v, method=method)
    assert problem.counts["hvp"] == 2
    problem.ggn_vp(theta, v)
    assert problem.counts["ggn_vp"] == 1
    hvp, ggn = problem.hvp_operator(theta), problem.ggn_operator(theta)
    assert problem.counts["hvp"] == 2 and problem.counts["ggn_vp"] == 1  # building is free
    for _ in range(3):
        hvp(v)
        ggn(v)
    assert problem.counts["hvp"] == 5 and problem.counts["ggn_vp"] == 4
    problem.hessian(theta)
    problem.ggn(theta)
    assert problem.counts["hvp"] == 5 + N and problem.counts["ggn_vp"] == 4 + N
    assert problem.counts["value"] == 1 and problem.counts["grad"] == 2


def test_subsets_and_minibatches_share_the_counter():
    problem, theta = random_problem(seed=18)
    batch = problem.minibatch(5, seed=1)
    sub = problem.subset([0, 3, 4])
    nested = batch.minibatch(2, seed=0)
    assert batch.counts is problem.counts and sub.counts is problem.counts
    assert nested.counts is problem.counts
    batch.value(theta)
    sub.grad(theta)
    nested.hvp(theta, theta)
    nested.ggn_vp(theta, theta)
    assert problem.counts == {"value": 1, "grad": 1, "hvp": 1, "ggn_vp": 1}


def test_separate_problems_count_separately():
    a, theta = random_problem(seed=19)
    b = Problem(a.model, a.loss, a.X, a.Y)
    a.value(theta)
    assert b.counts["value"] == 0


# -------------------------------------------------------------------------- data


def test_minibatch_size_rows_and_determinism():
    problem, theta = random_problem(n=20, seed=20)
    batch = problem.minibatch(7, seed=3)
    assert batch.num_examples == 7 and batch.Y.shape == (7, 2)
    rows = [int(np.flatnonzero(np.all(problem.X == x, axis=1))[0]) for x in batch.X]
    assert len(set(rows)) == 7 and rows == sorted(rows)  # without replacement, in order
    np.testing.assert_array_equal(batch.Y, problem.Y[rows])
    again = problem.minibatch(7, seed=3)
    np.testing.assert_array_equal(again.X, batch.X)
    others = [problem.minibatch(7, seed=s).X for s in range(4, 8)]
    assert any(not np.array_equal(other, batch.X) for other in others)
    assert batch.model is problem.model and batch.loss is problem.loss


def test_full_minibatch_and_partition_average_give_the_full_objective():
    problem, theta = random_problem(n=20, seed=21, l2=0.0)
    assert problem.minibatch(20, seed=5).value(theta) == pytest.approx(problem.value(theta),
                                                                      rel=1e-14)
    parts = np.random.default_rng(22).permutation(20).reshape(4, 5)
    average = np.mean([problem.subset(part).value(theta) for part in parts])
    assert average == pytest.approx(problem.value(theta), rel=1e-13)


def test_subset_keeps_l2_and_dense_limit():
    problem, _ = random_problem(seed=23, l2=0.5, dense_limit=100)
    sub = problem.subset([1, 2])
    assert sub.l2 == 0.5 and sub.dense_limit == 100
    np.testing.assert_array_equal(sub.X, problem.X[[1, 2]])


@pytest.mark.parametrize("size", [0, -1, 21])
def test_bad_minibatch_size_raises(size):
    problem, _ = random_problem(n=20, seed=24)
    with pytest.raises(ValueError, match="between 1 and 20"):
        problem.minibatch(size)


@pytest.mark.parametrize("indices", [[], [[0, 1]]])
def test_bad_subset_indices_raise(indices):
    problem, _ = random_problem(seed=25)
    with pytest.raises(ShapeError):
        problem.subset(indices)


def test_check_finite_loss_returns_the_loss_without_counting_it():
    problem, theta = random_problem(seed=28)
    assert problem.check_finite_loss(theta) == problem.value(theta)
    assert problem.counts == {"value": 1}
    with pytest.raises(NonFiniteError, match=r"loss at theta is inf.*\|theta\| = 1e\+200.*smaller"):
        problem.check_finite_loss(np.full(problem.num_params, 1e200 / np.sqrt(problem.num_params)))
    assert problem.counts == {"value": 1}


def test_data_checks_run_on_every_subset():
    problem, _ = random_problem(loss="sigmoid_cross_entropy", seed=29)
    batch = problem.minibatch(4, seed=0)  # the checks pass on the examples of valid data
    assert batch.num_examples == 4 and problem.subset([2]).num_examples == 1


def test_dense_limit_raises_too_large_error():
    problem, theta = random_problem(seed=26, dense_limit=53)
    assert problem.num_params == 54
    with pytest.raises(TooLargeError, match="matrix-free"):
        problem.hessian(theta)
    with pytest.raises(TooLargeError):
        problem.ggn(theta)
    with pytest.raises(MemoryError):  # TooLargeError is a MemoryError
        problem.ggn(theta)
    assert problem.counts["hvp"] == 0 and problem.counts["ggn_vp"] == 0
    at_limit, theta = random_problem(seed=26, dense_limit=54)
    assert at_limit.hessian(theta).shape == (54, 54)


def test_default_dense_limit_refuses_large_models_quickly():
    assert DENSE_LIMIT == 4000
    model = MLP([100, 50, 1])  # 5101 parameters
    rng = np.random.default_rng(27)
    problem = Problem(model, "mse", rng.standard_normal((3, 100)), rng.standard_normal((3, 1)))
    with pytest.raises(TooLargeError, match="5101"):
        problem.hessian(model.init(0))
    with pytest.raises(TooLargeError):
        problem.ggn(model.init(0))


# --------------------------------------------------------------------- bad input


def make(X, Y, sizes=(2, 3, 1), loss="mse", **kwargs):
    return Problem(MLP(sizes), loss, X, Y, **kwargs)


def test_bad_data_shapes_raise_shape_error():
    rng = np.random.default_rng(28)
    X, Y = rng.standard_normal((10, 2)), rng.standard_normal((10, 1))
    make(X, Y)
    with pytest.raises(ShapeError, match=r"\(10, 1\)"):
        make(X, Y[:9])  # rows differ
    with pytest.raises(ShapeError, match="reshape"):
        make(X, Y[:, 0])  # 1-D targets
    with pytest.raises(ShapeError):
        make(X, np.hstack([Y, Y]))  # too many outputs
    with pytest.raises(ShapeError):
        make(X[:, :1], Y)  # too few input columns
    with pytest.raises(ShapeError):
        make(X[:, 0], Y)  # 1-D inputs


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data_raises(bad):
    rng = np.random.default_rng(29)
    X, Y = rng.standard_normal((10, 2)), rng.standard_normal((10, 1))
    X_bad, Y_bad = X.copy(), Y.copy()
    X_bad[3, 1], Y_bad[7, 0] = bad, bad
    with pytest.raises(NonFiniteError, match="X"):
        make(X_bad, Y)
    with pytest.raises(NonFiniteError, match="Y"):
        make(X, Y_bad)


def test_bad_l2_and_loss_raise():
    X, Y = np.zeros((4, 2)), np.zeros((4, 1))
    with pytest.raises(ValueError, match="l2"):
        make(X, Y, l2=-0.1)
    with pytest.raises(UnknownNameError):
        make(X, Y, loss="hinge")


def test_vectors_of_wrong_length_raise_shape_error():
    problem, theta = random_problem(seed=30)
    short = np.ones(problem.num_params - 1)
    for call in (problem.value, problem.grad, problem.value_and_grad, problem.hessian,
                 problem.ggn, problem.hvp_operator, problem.ggn_operator):
        with pytest.raises(ShapeError, match="54"):
            call(short)
    for call in (problem.hvp, problem.ggn_vp):
        with pytest.raises(ShapeError, match=r"v must have shape \(54,\)"):
            call(theta, short)
        with pytest.raises(ShapeError, match=r"theta must have shape \(54,\)"):
            call(short, theta)
    for operator in (problem.hvp_operator(theta), problem.ggn_operator(theta)):
        with pytest.raises(ShapeError):
            operator(short)
    with pytest.raises(ShapeError):
        problem.value(theta.reshape(-1, 1))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_theta_or_v_raises(bad):
    problem, theta = random_problem(seed=31)
    broken = theta.copy()
    broken[5] = bad
    for call in (problem.value, problem.grad, problem.value_and_grad, problem.hessian,
                 problem.ggn, problem.hvp_operator, problem.ggn_operator):
        with pytest.raises(NonFiniteError):
            call(broken)
    for call in (problem.hvp, problem.ggn_vp):
        with pytest.raises(NonFiniteError, match="theta"):
            call(broken, theta)
        with pytest.raises(NonFiniteError, match="v contains"):
            call(theta, broken)
    for operator in (problem.hvp_operator(theta), problem.ggn_operator(theta)):
        with pytest.raises(NonFiniteError):
            operator(broken)


@pytest.mark.parametrize("l2", [-1e-3, np.nan, np.inf])
def test_weight_decay_must_be_finite_and_non_negative(l2):
    X, Y = np.ones((4, 2)), np.ones((4, 1))
    with pytest.raises(ValueError, match="l2 must be finite and >= 0"):
        Problem(MLP([2, 3, 1]), "mse", X, Y, l2=l2)
