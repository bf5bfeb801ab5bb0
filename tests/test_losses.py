"""Tests of mininn.losses: values, gradients, output-space Hessians, stability, sampling."""

import contextlib
import decimal
import warnings
from decimal import Decimal

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, hessian
from helpers import fd_grad, random_targets

from mininn.errors import ShapeError, UnknownNameError
from mininn.losses import (
    LOSSES,
    Loss,
    get_loss,
    mse,
    sigmoid_cross_entropy,
    softmax_cross_entropy,
)

NAMES = sorted(LOSSES)

#: |F| at which the losses are checked against a high-precision reference: from the centre
#: to beyond where exp(-|F|) underflows (745).
SATURATION_LEVELS = [0, 5, 20, 30, 40, 100, 700, 800]
SMALLEST_NORMAL = np.finfo(float).tiny


def logits_and_targets(name, n=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return 2 * rng.standard_normal((n, k)), random_targets(name, n, k, rng)


def direct_formula(name, F, Y):
    n = F.shape[0]
    if name == "mse":
        return sum((F[i, j] - Y[i, j]) ** 2 for i in range(n) for j in range(F.shape[1])) / n
    if name == "sigmoid_cross_entropy":
        p = 1 / (1 + np.exp(-F))
        return -np.sum(Y * np.log(p) + (1 - Y) * np.log(1 - p)) / n
    p = np.exp(F) / np.sum(np.exp(F), axis=1, keepdims=True)
    return -np.sum(Y * np.log(p)) / n


def closed_form_gradient(name, F, Y):
    n = F.shape[0]
    if name == "mse":
        return 2 * (F - Y) / n
    if name == "sigmoid_cross_entropy":
        return (1 / (1 + np.exp(-F)) - Y) / n
    return (np.exp(F) / np.sum(np.exp(F), axis=1, keepdims=True) - Y) / n


@pytest.mark.parametrize("name", NAMES)
def test_value_matches_direct_formula(name):
    F, Y = logits_and_targets(name)
    loss = get_loss(name)
    assert loss(F, Y) == pytest.approx(direct_formula(name, F, Y), rel=1e-12)
    assert loss.value(F, Y) == loss(F, Y)


def test_cross_entropies_accept_soft_targets():
    rng = np.random.default_rng(1)
    F = rng.standard_normal((5, 4))
    Y = rng.dirichlet(np.ones(4), size=5)
    assert softmax_cross_entropy(F, Y) == pytest.approx(
        direct_formula("softmax_cross_entropy", F, Y), rel=1e-12)
    Yb = rng.random((5, 4))
    assert sigmoid_cross_entropy(F, Yb) == pytest.approx(
        direct_formula("sigmoid_cross_entropy", F, Yb), rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_finite_differences_and_closed_form(name):
    F, Y = logits_and_targets(name, seed=2)
    loss = get_loss(name)
    g = grad(lambda f: loss(f, Y))(F)
    numeric = fd_grad(lambda f: loss(f.reshape(F.shape), Y), F.ravel()).reshape(F.shape)
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g, closed_form_gradient(name, F, Y), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_output_hessian_vp_matches_autograd_hessian(name):
    F, Y = logits_and_targets(name, n=5, k=3, seed=3)
    U = np.random.default_rng(4).standard_normal(F.shape)
    loss = get_loss(name)
    dense = hessian(lambda f: loss(anp.reshape(f, F.shape), Y))(F.ravel())
    assert dense.shape == (15, 15)
    product = loss.output_hessian_vp(F, Y, U)
    assert product.shape == F.shape
    np.testing.assert_allclose(product.ravel(), dense @ U.ravel(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_output_hessian_is_block_diagonal_psd_and_independent_of_targets(name):
    F, Y = logits_and_targets(name, n=4, k=3, seed=5)
    loss = get_loss(name)
    dense = np.stack([loss.output_hessian_vp(F, Y, e.reshape(F.shape)).ravel()
                      for e in np.eye(F.size)], axis=1)
    np.testing.assert_allclose(dense, dense.T, atol=1e-15)
    assert np.linalg.eigvalsh(dense).min() >= -1e-14
    block = np.kron(np.eye(4), np.ones((3, 3)))
    np.testing.assert_array_equal(dense[block == 0], 0.0)
    _, Y2 = logits_and_targets(name, n=4, k=3, seed=6)
    U = np.ones(F.shape)
    np.testing.assert_allclose(loss.output_hessian_vp(F, Y2, U), loss.output_hessian_vp(F, Y, U))


@contextlib.contextmanager
def strict():
    """Floating-point problems and warnings as errors (underflow to 0 is allowed)."""
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        yield


def test_sigmoid_cross_entropy_is_stable_at_extreme_logits():
    n = 4
    F = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0]])
    Y = np.array([[0.0], [0.0], [1.0], [1.0]])
    with strict():
        per_example = [sigmoid_cross_entropy(F[i:i + 1], Y[i:i + 1]) for i in range(n)]
        g = grad(lambda f: sigmoid_cross_entropy(f, Y))(F)
        hv = sigmoid_cross_entropy.output_hessian_vp(F, Y, np.ones_like(F))
    # log(1 + e^1000) = 1000 (confidently wrong), log(1 + e^-1000) = 0 (confidently right)
    np.testing.assert_allclose(per_example, [1000.0, 0.0, 0.0, 1000.0], atol=1e-300)
    with strict():
        assert sigmoid_cross_entropy(F[:1].repeat(n, 0), Y[:1].repeat(n, 0)) == 1000.0
        assert sigmoid_cross_entropy(F, Y) == pytest.approx(2000.0 / n)
    np.testing.assert_allclose(g, np.array([[1.0], [0.0], [0.0], [-1.0]]) / n, atol=1e-300)
    np.testing.assert_allclose(hv, 0.0, atol=1e-300)


def test_softmax_cross_entropy_is_stable_at_extreme_logits():
    F = np.array([[1000.0, -1000.0, 0.0], [1000.0, -1000.0, 0.0], [1000.0, 1000.0, -1000.0]])
    Y = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    with strict():
        values = [softmax_cross_entropy(F[i:i + 1], Y[i:i + 1]) for i in range(3)]
        g = grad(lambda f: softmax_cross_entropy(f, Y))(F)
        hv = softmax_cross_entropy.output_hessian_vp(F, Y, np.ones_like(F))
        hv2 = softmax_cross_entropy.output_hessian_vp(F, Y, np.tile([1.0, 0.0, 0.0], (3, 1)))
    np.testing.assert_allclose(values, [0.0, 2000.0, 1000.0 + np.log(2) + 1000.0], atol=1e-12)
    expected_p = np.array([[1, 0, 0], [1, 0, 0], [0.5, 0.5, 0]])
    np.testing.assert_allclose(g, (expected_p - Y) / 3, atol=1e-300)
    np.testing.assert_allclose(hv, 0.0, atol=1e-13)  # softmax Hessian kills constant shifts
    assert np.all(np.isfinite(hv2))
    np.testing.assert_allclose(hv2, [[0, 0, 0], [0, 0, 0], [0.25 / 3, -0.25 / 3, 0]], atol=1e-13)


def test_mse_has_no_overflow_at_large_outputs():
    F, Y = np.array([[1e3, -1e3]]), np.zeros((1, 2))
    with strict():
        assert mse(F, Y) == 2e6
        np.testing.assert_array_equal(grad(lambda f: mse(f, Y))(F), [[2e3, -2e3]])


def test_mse_samples_have_variance_one_half():
    rng = np.random.default_rng(7)
    F = np.tile([[-1.0, 0.0, 3.0]], (20000, 1))
    samples = mse.sample_targets(F, rng)
    assert samples.shape == F.shape
    np.testing.assert_allclose(samples.mean(axis=0), F[0], atol=0.03)
    np.testing.assert_allclose(samples.var(axis=0), 0.5, rtol=0.05)


def test_sigmoid_samples_are_bernoulli_with_mean_p():
    rng = np.random.default_rng(8)
    logits = np.array([-2.0, 0.0, 1.0, 40.0, -40.0])
    F = np.tile(logits, (20000, 1))
    samples = sigmoid_cross_entropy.sample_targets(F, rng)
    assert samples.shape == F.shape
    assert set(np.unique(samples)) <= {0.0, 1.0}
    np.testing.assert_allclose(samples.mean(axis=0), 1 / (1 + np.exp(-logits)), atol=0.015)


def test_softmax_samples_are_one_hot_with_softmax_frequencies():
    rng = np.random.default_rng(9)
    logits = np.array([0.5, -1.0, 1.0, 0.0])
    F = np.tile(logits, (20000, 1))
    samples = softmax_cross_entropy.sample_targets(F, rng)
    assert samples.shape == F.shape
    assert set(np.unique(samples)) <= {0.0, 1.0}
    np.testing.assert_array_equal(samples.sum(axis=1), 1.0)
    p = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(samples.mean(axis=0), p, atol=0.015)


def test_softmax_samples_follow_each_row():
    rng = np.random.default_rng(10)
    F = np.array([[1000.0, 0.0, 0.0], [0.0, 0.0, 1000.0], [-1000.0, 1000.0, -1000.0]] * 50)
    with strict():
        samples = softmax_cross_entropy.sample_targets(F, rng)
    np.testing.assert_array_equal(samples, np.eye(3)[np.argmax(F, axis=1)])


def test_sampling_is_deterministic_for_a_seed():
    F = np.random.default_rng(11).standard_normal((10, 3))
    for loss in (mse, sigmoid_cross_entropy, softmax_cross_entropy):
        a = loss.sample_targets(F, np.random.default_rng(5))
        b = loss.sample_targets(F, np.random.default_rng(5))
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("f_shape", "y_shape"), [((4, 2), (4, 3)), ((4, 2), (3, 2)),
                                                  ((4,), (4,)), ((4, 1), (4,)),
                                                  ((2, 2, 2), (2, 2, 2))])
def test_shape_mismatch_raises(name, f_shape, y_shape):
    with pytest.raises(ShapeError, match=r"\(n, k\)"):
        get_loss(name)(np.zeros(f_shape), np.zeros(y_shape))


def test_get_loss():
    assert get_loss("mse") is mse
    assert get_loss("sigmoid_cross_entropy") is sigmoid_cross_entropy
    assert get_loss("softmax_cross_entropy") is softmax_cross_entropy
    assert get_loss(mse) is mse
    assert repr(mse) == "mininn.losses.mse"


@pytest.mark.parametrize("bad", ["MSE", "cross_entropy", "", None, 2, ["mse"]])
def test_get_loss_unknown_name_raises(bad):
    with pytest.raises(UnknownNameError, match="unknown loss"):
        get_loss(bad)


def test_base_loss_is_abstract():
    loss = Loss()
    F = np.zeros((2, 2))
    with pytest.raises(NotImplementedError):
        loss(F, F)
    with pytest.raises(NotImplementedError):
        loss.output_hessian_vp(F, F, F)
    with pytest.raises(NotImplementedError):
        loss.sample_targets(F, np.random.default_rng(0))


# ----------------------------------------------------------- saturated outputs, exactly


def exact(x):
    """A float (or float array) as Decimal (array of Decimals), without rounding."""
    return np.vectorize(lambda value: Decimal(float(value)), otypes=[object])(x)


def high_precision(digits):
    """Decorator: evaluate a function of Decimal arrays with ``digits`` significant digits on
    the exact values of float arguments, and return floats.

    The Hessians need 1000 digits, to resolve 1 - p for p = sigmoid(800), which differs from
    1 in the 348th; values and gradients are checked to absolute errors, for which 50 do.
    """
    def decorator(function):
        def evaluate(*args):
            with decimal.localcontext(prec=digits):
                return np.vectorize(float, otypes=[float])(function(*[exact(a) for a in args]))
        return evaluate
    return decorator


@high_precision(1000)
def exact_sigmoid_hessian_vp(F, U):
    e = np.vectorize(Decimal.exp, otypes=[object])(F)
    return e / (1 + e) ** 2 * U / F.shape[0]


@high_precision(1000)
def exact_softmax_hessian(F):
    """The (n, k, k) blocks diag(p) - p p^T, divided by n."""
    e = np.vectorize(Decimal.exp, otypes=[object])(F)
    p = e / e.sum(axis=1, keepdims=True)
    return (np.einsum("ij,jk->ijk", p, np.eye(F.shape[1], dtype=int)) - np.einsum("ij,ik->ijk", p, p)) \
        / F.shape[0]


def assert_relative_error_where_normal(computed, true, rtol):
    """Relative error <= rtol wherever the true value is a normal float; elsewhere (true value
    below the normal range, or 0) an absolute error below the smallest normal float."""
    assert np.all(np.isfinite(computed))
    normal = np.abs(true) >= SMALLEST_NORMAL
    np.testing.assert_allclose(computed[normal], true[normal], rtol=rtol, atol=0)
    np.testing.assert_allclose(computed[~normal], true[~normal], rtol=0, atol=SMALLEST_NORMAL)


def saturated_sigmoid_logits():
    return np.array([[sign * level] for level in SATURATION_LEVELS for sign in (-1.0, 1.0)])


def saturated_softmax_logits():
    """Rows with one dominant class, two tied dominant classes and one unlikely class, at each level."""
    rows = []
    for a in SATURATION_LEVELS:
        rows += [[a, 0.0, -a], [a, a, 0.0], [-a, 0.0, 0.0], [0.0, -a, 0.5 * a]]
    return np.array(rows, dtype=float)


def test_sigmoid_output_hessian_is_accurate_at_saturated_outputs():
    F = saturated_sigmoid_logits()
    U = np.random.default_rng(12).standard_normal(F.shape)
    with strict():
        product = sigmoid_cross_entropy.output_hessian_vp(F, np.zeros_like(F), U)
    true = exact_sigmoid_hessian_vp(F, U)
    assert np.min(np.abs(true[np.abs(F) == 700])) > SMALLEST_NORMAL  # e^-700 is a normal float
    assert_relative_error_where_normal(product, true, rtol=1e-13)


def test_softmax_output_hessian_is_accurate_at_saturated_outputs():
    F = saturated_softmax_logits()
    n, k = F.shape
    true = exact_softmax_hessian(F)
    with strict():
        columns = [softmax_cross_entropy.output_hessian_vp(F, F, np.tile(e, (n, 1))) for e in np.eye(k)]
    blocks = np.stack(columns, axis=2)  # blocks[i, :, c] = H_i e_c
    assert_relative_error_where_normal(blocks, true, rtol=1e-13)
    # A general direction: the error bound of a matrix-vector product, |H_i| |U_i| eps,
    # entry by entry (not relative to the result, which may cancel for a given U).
    U = np.random.default_rng(13).standard_normal(F.shape)
    with strict():
        product = softmax_cross_entropy.output_hessian_vp(F, F, U)
    exact_product = np.einsum("ijk,ik->ij", true, U)
    bound = np.einsum("ijk,ik->ij", np.abs(true), np.abs(U))
    assert np.all(np.abs(product - exact_product) <= 1e-13 * bound + SMALLEST_NORMAL)


@high_precision(50)
def exact_sigmoid_loss_and_gradient(F, Y):
    e = np.vectorize(Decimal.exp, otypes=[object])(F)
    log_one_plus_e = np.vectorize(Decimal.ln, otypes=[object])(1 + e)
    return np.stack([log_one_plus_e - Y * F, e / (1 + e) - Y])


@high_precision(50)
def exact_softmax_loss_and_gradient(F, Y):
    e = np.vectorize(Decimal.exp, otypes=[object])(F)
    total = e.sum(axis=1, keepdims=True)
    log_total = np.vectorize(Decimal.ln, otypes=[object])(total)
    return np.stack([np.broadcast_to(log_total, F.shape) - np.sum(Y * F, axis=1, keepdims=True),
                     e / total - Y])


@pytest.mark.parametrize("name", ["sigmoid_cross_entropy", "softmax_cross_entropy"])
def test_cross_entropy_values_and_gradients_are_accurate_at_saturated_outputs(name):
    """Per example: finite, without warnings, and off by at most a few ulps of the value and of
    the largest |F|. (Not relatively accurate where tiny: a confidently right example's loss
    and gradient, 4e-18 at F = 40, come out as 0, an error below the resolution of F.)"""
    loss = get_loss(name)
    if name == "sigmoid_cross_entropy":
        F = np.repeat(saturated_sigmoid_logits(), 2, axis=0)
        Y = np.tile([[0.0], [1.0]], (len(F) // 2, 1))
        exact_value_and_gradient = exact_sigmoid_loss_and_gradient
    else:
        F = np.repeat(saturated_softmax_logits(), 3, axis=0)
        Y = np.tile(np.eye(3), (len(F) // 3, 1))
        exact_value_and_gradient = exact_softmax_loss_and_gradient
    with strict():
        values = np.array([loss(F[i:i + 1], Y[i:i + 1]) for i in range(len(F))])
        gradients = np.concatenate([grad(loss, 0)(F[i:i + 1], Y[i:i + 1]) for i in range(len(F))])
    true_values, true_gradients = exact_value_and_gradient(F, Y)
    resolution = 2 * np.finfo(float).eps * (1 + np.max(np.abs(F), axis=1))
    assert np.all(np.abs(values - true_values[:, 0]) <= resolution + 2 * np.finfo(float).eps * values)
    assert np.all(np.abs(gradients - true_gradients) <= resolution[:, None])

