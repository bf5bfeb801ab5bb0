"""Tests of mininn.curvature.mlp_passes (the hand-written MLP passes) against autograd and dense matrices."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad, grad
from helpers import fd_derivative

from mininn import MLP, Problem
from mininn.activations import ACTIVATIONS, DERIVATIVES
from mininn.curvature import dense_from_operator
from mininn.curvature import mlp_passes as passes
from mininn.errors import MininnError, ShapeError, UnsupportedModelError
from mininn.losses import LOSSES, Loss

ACTIVATION_NAMES = sorted(ACTIVATIONS)
LOSS_NAMES = sorted(LOSSES)
SIZES = [3, 5, 4, 3]  # two hidden layers
TOLERANCE = 1e-12


def relative(a, b):
    """max |a - b| / max |b|."""
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


def small_problem(activation, loss, l2=0.0, output="identity", sizes=SIZES, n=6, seed=0):
    """A problem on random data, and a random theta (no pre-activation exactly 0)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sizes[0]))
    if loss == "softmax_cross_entropy":
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], size=n)]
    else:
        Y = rng.random((n, sizes[-1]))
    model = MLP(sizes, activation=activation, output=output)
    theta = rng.normal(scale=0.7, size=model.num_params)
    return Problem(model, loss, X, Y, l2=l2, fast_path=False), theta, rng.normal(size=model.num_params)


def check_against_generic_path(problem, theta, v):
    """Every product of the fast path against the dense matrices and autograd's products."""
    loss, Y, l2, N = problem.loss, problem.Y, problem.l2, problem.num_params
    trace = passes.forward(problem.model, theta, problem.X)
    H, G = problem.hessian(theta), problem.ggn(theta)

    value, gradient = passes.value_and_gradient(trace, loss, Y, l2)
    expected_value, expected_gradient = problem.value_and_grad(theta)
    assert abs(value - expected_value) <= TOLERANCE * abs(expected_value)
    assert relative(gradient, expected_gradient) < TOLERANCE
    assert relative(passes.gradient(trace, loss, Y, l2), expected_gradient) < TOLERANCE
    assert passes.value(trace, loss, Y, l2) == value

    hvp_operator = passes.hessian_vector_operator(trace, loss, Y, l2)
    ggn_operator = passes.gauss_newton_operator(trace, loss, Y, l2)
    assert relative(dense_from_operator(hvp_operator, N), H) < TOLERANCE
    assert relative(dense_from_operator(ggn_operator, N), G) < TOLERANCE
    assert relative(passes.hessian_vector_product(trace, loss, Y, v, l2), H @ v) < TOLERANCE
    assert relative(passes.gauss_newton_vector_product(trace, loss, Y, v, l2), G @ v) < TOLERANCE
    assert relative(hvp_operator(v), problem.hvp(theta, v, method="rev_rev")) < TOLERANCE
    assert relative(hvp_operator(v), problem.hvp_operator(theta)(v)) < TOLERANCE
    assert relative(ggn_operator(v), problem.ggn_operator(theta)(v)) < TOLERANCE
    assert relative(hvp_operator(v), problem.hvp(theta, v, method="fwd_rev")) < TOLERANCE
    assert relative(ggn_operator(v), problem.ggn_vp(theta, v)) < TOLERANCE


@pytest.mark.parametrize("l2", [0.0, 0.1])
@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_products_match_dense_matrices_and_autograd(activation, loss, l2):
    problem, theta, v = small_problem(activation, loss, l2)
    check_against_generic_path(problem, theta, v)


@pytest.mark.parametrize("output", ACTIVATION_NAMES)
def test_every_activation_works_as_the_output_activation(output):
    problem, theta, v = small_problem("tanh", "mse", 0.1, output=output, seed=1)
    check_against_generic_path(problem, theta, v)


def test_hessian_differs_from_gauss_newton_so_the_comparisons_can_fail():
    for activation in ("relu", "tanh"):
        problem, theta, v = small_problem(activation, "softmax_cross_entropy")
        assert relative(problem.hessian(theta) @ v, problem.ggn(theta) @ v) > 1e-2


@pytest.mark.parametrize("sizes", [[3, 1, 4, 1], [2, 3], [4, 6, 1, 5, 2]])
def test_degenerate_and_deep_layer_shapes(sizes):
    # widths of 1 make BLAS operands that are both C- and Fortran-ordered
    problem, theta, v = small_problem("softplus", "sigmoid_cross_entropy", 0.1, sizes=sizes, seed=2)
    check_against_generic_path(problem, theta, v)


def test_one_example_and_fortran_ordered_inputs():
    problem, theta, v = small_problem("gelu", "mse", sizes=[3, 5, 4, 2], n=1, seed=3)
    check_against_generic_path(problem, theta, v)
    problem, theta, v = small_problem("relu", "mse", sizes=[3, 5, 4, 2], seed=3)
    fortran = passes.forward(problem.model, theta, np.asfortranarray(problem.X))
    expected = problem.hvp(theta, v)
    assert relative(passes.hessian_vector_product(fortran, problem.loss, problem.Y, v), expected) < 1e-12


def test_relu_derivative_is_zero_at_zero_as_in_mininn():
    # X has a zero row and the biases are 0: that example's first pre-activations are exactly 0
    problem, theta, v = small_problem("relu", "mse", seed=4)
    problem.X[0] = 0.0
    for layer in problem.model.layout:
        theta[layer.bias] = 0.0
    assert np.all(problem.model.forward_trace(theta, problem.X)[1][0][0] == 0)
    trace = passes.forward(problem.model, theta, problem.X)
    assert not np.any(trace.slopes[0][0])
    gradient = passes.gradient(trace, problem.loss, problem.Y)
    assert relative(gradient, problem.grad(theta)) < TOLERANCE
    hvp = passes.hessian_vector_product(trace, problem.loss, problem.Y, v)
    assert relative(hvp, problem.hvp(theta, v)) < TOLERANCE
    ggn = passes.gauss_newton_vector_product(trace, problem.loss, problem.Y, v)
    assert relative(ggn, problem.ggn_vp(theta, v)) < TOLERANCE


@pytest.mark.filterwarnings("ignore:Output seems independent of input")  # autograd on relu''
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_derivatives_match_autograd_and_finite_differences(name):
    f = ACTIVATIONS[name]
    z = np.random.default_rng(5).normal(scale=3.0, size=200)
    z = np.where(np.abs(z) < 1e-2, 0.5, z)  # keep the central differences off the kink
    value, slope, curvature = DERIVATIVES[f](z.copy())
    slope = np.ones_like(z) if slope is None else slope
    curvature = np.zeros_like(z) if curvature is None else curvature
    np.testing.assert_allclose(value, f(z), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(slope, elementwise_grad(f)(z), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(curvature, elementwise_grad(elementwise_grad(f))(z), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(slope, fd_derivative(f, z), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(curvature, fd_derivative(elementwise_grad(f), z), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_derivatives_are_finite_and_quiet_at_extreme_inputs(name):
    z = np.array([-1000.0, -40.0, 40.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for part in DERIVATIVES[ACTIVATIONS[name]](z):
            assert part is None or np.all(np.isfinite(part))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_derivatives_match_autograd_at_moderate_and_extreme_outputs(name):
    loss = LOSSES[name]
    rng = np.random.default_rng(6)
    for scale in (1.0, 50.0):
        F, U = scale * rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
        Y = np.eye(4)[rng.integers(0, 4, size=5)] if name == "softmax_cross_entropy" else rng.random((5, 4))
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            gradient, product = loss.output_gradient(F, Y), loss.output_hessian_operator(F, Y)(U)
        assert relative(gradient, grad(loss.value)(F, Y)) < TOLERANCE
        assert relative(product, loss.output_hessian_vp(F, Y, U)) < TOLERANCE


class HuberLoss(Loss):
    """A loss mininn does not ship: the fast path takes its derivatives from autograd."""

    name = "huber"

    def value(self, F, Y):
        r = F - Y
        return anp.sum(anp.sqrt(1.0 + r**2) - 1.0) / anp.shape(F)[0]

    def output_hessian_vp(self, F, Y, U):
        return U / (1.0 + (F - Y) ** 2) ** 1.5 / np.shape(F)[0]


def test_a_loss_outside_mininn_uses_autograd_and_its_own_output_hessian():
    problem, theta, v = small_problem("tanh", "mse", 0.1, seed=7)
    problem = Problem(problem.model, HuberLoss(), problem.X, problem.Y, l2=0.1, fast_path=False)
    check_against_generic_path(problem, theta, v)


def test_operators_return_new_arrays_and_leave_the_trace_unchanged():
    problem, theta, v = small_problem("softplus", "softmax_cross_entropy", 0.1, seed=8)
    trace = passes.forward(problem.model, theta, problem.X)
    arrays = [a for a in trace.inputs + trace.slopes + trace.curvatures + [trace.outputs] if a is not None]
    stored = [array.copy() for array in arrays]
    for build in (passes.hessian_vector_operator, passes.gauss_newton_operator):
        operator = build(trace, problem.loss, problem.Y, problem.l2)
        first = operator(v)
        kept = first.copy()
        second = operator(v)
        assert second is not first and np.array_equal(first, kept) and np.array_equal(first, second)
    assert len(arrays) == 8  # 3 inputs, 2 slopes, 2 curvatures (hidden layers), the outputs
    assert all(map(np.array_equal, stored, arrays))
    np.testing.assert_allclose(trace.outputs, problem.outputs(theta), rtol=1e-14)


def test_unsupported_models_are_refused_with_a_pointer_to_the_generic_path():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(4, 3))
    cubic = MLP([3, 4, 2], activation=lambda z: z**3)
    assert not passes.is_supported(cubic)
    with pytest.raises(UnsupportedModelError, match="generic autograd") as raised:
        passes.forward(cubic, cubic.init(0), X)
    assert isinstance(raised.value, MininnError)

    class ScaledMLP(MLP):
        def forward(self, theta, X):
            return 2.0 * super().forward(theta, X)

    assert not passes.is_supported(ScaledMLP([3, 4, 2]))
    assert not passes.is_supported(object())
    assert passes.is_supported(MLP([3, 4, 2], activation="gelu", output="sigmoid"))


def test_bad_shapes_raise_shape_error():
    problem, theta, v = small_problem("relu", "mse")
    with pytest.raises(ShapeError):
        passes.forward(problem.model, theta[:-1], problem.X)
    with pytest.raises(ShapeError):
        passes.forward(problem.model, theta, problem.X[:, :2])
    trace = passes.forward(problem.model, theta, problem.X)
    for build in (passes.hessian_vector_operator, passes.gauss_newton_operator):
        with pytest.raises(ShapeError):
            build(trace, problem.loss, problem.Y)(v[:-1])
    for wrong_targets in (problem.Y[:, 0], problem.Y[1:], problem.Y[:, :1]):  # would broadcast
        for function in (passes.value, passes.gradient, passes.hessian_vector_operator,
                         passes.gauss_newton_operator):
            with pytest.raises(ShapeError, match="Y has shape"):
                function(trace, problem.loss, wrong_targets)


def test_the_jax_peer_of_the_benchmark_computes_the_same_products():
    pytest.importorskip("jax")
    from benchmarks import jax_peer
    from benchmarks.curvature import autoencoder_problem, fast_products

    assert jax_peer.load() is not None
    problem, theta = autoencoder_problem(8, sizes=[16, 6, 3, 6, 16])
    v = np.random.default_rng(10).normal(size=problem.num_params)
    peer = jax_peer.JaxProducts(problem)
    trace = passes.forward(problem.model, theta, problem.X)
    expected = {
        "grad": passes.gradient(trace, problem.loss, problem.Y),
        "hvp": passes.hessian_vector_product(trace, problem.loss, problem.Y, v),
        "ggn": passes.gauss_newton_vector_product(trace, problem.loss, problem.Y, v),
    }
    assert relative(peer.gradient(theta), expected["grad"]) < TOLERANCE
    assert relative(peer.hvp(theta, v), expected["hvp"]) < TOLERANCE
    assert relative(peer.hvp_apply(peer.hvp_build(theta), v), expected["hvp"]) < TOLERANCE
    assert relative(peer.ggn(theta, v), expected["ggn"]) < TOLERANCE
    assert relative(peer.ggn_apply(peer.ggn_build(theta), v), expected["ggn"]) < TOLERANCE
    assert set(peer.timed(theta, v)) == set(fast_products(problem, theta, v)) - {"forward"}


def test_problem_uses_the_fast_path_for_mlps_and_agrees_with_the_generic_one():
    generic, theta, v = small_problem("relu", "softmax_cross_entropy", 0.1, seed=11)
    fast = Problem(generic.model, generic.loss, generic.X, generic.Y, l2=0.1)
    assert fast.fast_path and not generic.fast_path and fast.minibatch(3).fast_path
    cubic = MLP([3, 4, 2], activation=lambda x: x**3)
    assert not Problem(cubic, "mse", generic.X, generic.Y[:, :2]).fast_path
    with pytest.raises(UnsupportedModelError):
        Problem(cubic, "mse", generic.X, generic.Y[:, :2], fast_path=True)
    value, gradient = fast.value_and_grad(theta)
    expected_value, expected_gradient = generic.value_and_grad(theta)
    assert abs(value - expected_value) <= TOLERANCE * abs(expected_value)
    assert relative(gradient, expected_gradient) < TOLERANCE
    for name in ("hvp", "ggn_vp"):
        assert relative(getattr(fast, name)(theta, v), getattr(generic, name)(theta, v)) < TOLERANCE
    for name in ("hvp_operator", "ggn_operator"):
        assert relative(getattr(fast, name)(theta)(v), getattr(generic, name)(theta)(v)) < TOLERANCE
    # the forward pass kept for theta is not reused at another theta, even one changed in place
    moved = theta.copy()
    fast.value_and_grad(moved)
    moved += 0.1 * v
    assert relative(fast.value_and_grad(moved)[1], generic.value_and_grad(moved)[1]) < TOLERANCE
    assert fast.counts == {"grad": 3, "hvp": 2, "ggn_vp": 2}  # counted as on the generic path


def test_per_layer_activations_take_the_fast_path():
    rng = np.random.default_rng(12)
    model = MLP([3, 5, 2, 5, 3], activation=["sigmoid", "identity", "tanh"])
    X, Y = rng.normal(size=(6, 3)), rng.random((6, 3))
    problem = Problem(model, "sigmoid_cross_entropy", X, Y, l2=0.1, fast_path=False)
    assert Problem(model, "sigmoid_cross_entropy", X, Y).fast_path
    theta = rng.normal(scale=0.7, size=model.num_params)
    check_against_generic_path(problem, theta, rng.normal(size=model.num_params))
