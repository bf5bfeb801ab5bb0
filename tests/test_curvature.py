"""Tests of mininn.curvature against hand-derived (analytic) matrices."""

import autograd.numpy as anp
import numpy as np
import pytest
from helpers import fd_hessian

from mininn import MLP
from mininn.curvature import (
    DEFAULT_HVP_METHOD,
    HVP_METHODS,
    dense_from_operator,
    gauss_newton_operator,
    gauss_newton_vector_product,
    hessian,
    hessian_vector_operator,
    hessian_vector_product,
    jacobian_vector_product,
    layer_blocks,
    vector_jacobian_product,
)
from mininn.errors import UnknownNameError

N = 6


def rosenbrock_plus(x):
    """Rosenbrock's function plus a small exponential term (so no third derivative vanishes)."""
    rosen = anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    return rosen + 0.1 * anp.sum(anp.exp(0.3 * x))


def rosenbrock_plus_gradient(x):
    g = 0.03 * np.exp(0.3 * x)
    g[:-1] += -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


def rosenbrock_plus_hessian(x):
    """The Hessian written out by hand: tridiagonal plus the exponential's diagonal."""
    H = np.diag(0.009 * np.exp(0.3 * x))
    for i in range(len(x) - 1):
        H[i, i] += 1200.0 * x[i] ** 2 - 400.0 * x[i + 1] + 2.0
        H[i + 1, i + 1] += 200.0
        H[i, i + 1] = H[i + 1, i] = -400.0 * x[i]
    return H


def points(seed, count=3):
    return np.random.default_rng(seed).normal(scale=1.2, size=(count, N))


def test_analytic_rosenbrock_hessian_is_right():
    # guard the reference itself with finite differences of the hand-written gradient
    for x in points(0):
        np.testing.assert_allclose(rosenbrock_plus_hessian(x),
                                   fd_hessian(rosenbrock_plus_gradient, x), rtol=1e-7, atol=1e-5)


def test_dense_hessian_matches_analytic():
    for x in points(1):
        H = hessian(rosenbrock_plus, x)
        assert isinstance(H, np.ndarray) and H.shape == (N, N)
        np.testing.assert_allclose(H, rosenbrock_plus_hessian(x), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("method", HVP_METHODS)
def test_hessian_vector_product_matches_analytic(method):
    rng = np.random.default_rng(2)
    for x in points(3):
        v = rng.standard_normal(N)
        product = hessian_vector_product(rosenbrock_plus, x, v, method=method)
        assert product.shape == (N,)
        np.testing.assert_allclose(product, rosenbrock_plus_hessian(x) @ v, rtol=1e-12,
                                   atol=1e-10)


def test_default_method_is_one_of_the_methods():
    assert set(HVP_METHODS) == {"fwd_rev", "rev_rev"}
    assert DEFAULT_HVP_METHOD in HVP_METHODS
    x, v = points(4)[0], np.ones(N)
    np.testing.assert_allclose(hessian_vector_product(rosenbrock_plus, x, v),
                               rosenbrock_plus_hessian(x) @ v, rtol=1e-12, atol=1e-10)


def test_hessian_vector_operator_matches_analytic_for_many_vectors():
    x = points(5)[0]
    H = rosenbrock_plus_hessian(x)
    product = hessian_vector_operator(rosenbrock_plus, x)
    for v in np.random.default_rng(6).standard_normal((4, N)):
        np.testing.assert_allclose(product(v), H @ v, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("method", ["fwd", "Fwd_Rev", "", None])
def test_unknown_hvp_method_raises(method):
    x = points(7)[0]
    with pytest.raises(UnknownNameError, match="rev_rev"):
        hessian_vector_product(rosenbrock_plus, x, x, method=method)


# --------------------------------------------------------------- Gauss-Newton

n, k = 4, 3
_rng = np.random.default_rng(8)
A = _rng.standard_normal((n * k, N)) / 2
S = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.5]])  # SPD mixing of outputs


def forward(x):
    """A nonlinear map R^N -> (n, k) with the Jacobian diag(1 - tanh^2(Ax)) A."""
    return anp.reshape(anp.tanh(anp.dot(A, x)), (n, k))


def forward_jacobian(x):
    return (1.0 - np.tanh(A @ x) ** 2)[:, None] * A


def output_hessian_vp(F, U):
    """H_L U with H_L = kron(I_n, S) + diag(F^2): symmetric and dependent on the outputs."""
    return anp.dot(U, S) + F**2 * U


def output_hessian(F):
    return np.kron(np.eye(n), S) + np.diag(F.ravel() ** 2)


def test_jacobian_products_match_analytic_jacobian():
    rng = np.random.default_rng(9)
    x, v, U = rng.standard_normal(N), rng.standard_normal(N), rng.standard_normal((n, k))
    J = forward_jacobian(x)
    jv = jacobian_vector_product(forward, x, v)
    assert jv.shape == (n, k)
    np.testing.assert_allclose(jv.ravel(), J @ v, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(vector_jacobian_product(forward, x, U), J.T @ U.ravel(),
                               rtol=1e-12, atol=1e-14)


def test_gauss_newton_vector_product_matches_jacobian_form():
    rng = np.random.default_rng(10)
    for _ in range(3):
        x, v = rng.standard_normal(N), rng.standard_normal(N)
        J = forward_jacobian(x)
        G = J.T @ output_hessian(forward(x)) @ J
        product = gauss_newton_vector_product(forward, output_hessian_vp, x, v)
        assert product.shape == (N,)
        np.testing.assert_allclose(product, G @ v, rtol=1e-12, atol=1e-12)


def test_gauss_newton_operator_matches_jacobian_form():
    rng = np.random.default_rng(11)
    x = rng.standard_normal(N)
    J = forward_jacobian(x)
    G = J.T @ output_hessian(forward(x)) @ J
    product = gauss_newton_operator(forward, output_hessian_vp, x)
    for v in rng.standard_normal((4, N)):
        np.testing.assert_allclose(product(v), G @ v, rtol=1e-12, atol=1e-12)
    dense = dense_from_operator(product, N)
    np.testing.assert_allclose(dense, G, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dense, dense.T, atol=1e-12)
    assert np.linalg.eigvalsh(dense).min() > -1e-12


# ------------------------------------------------------------ dense and blocks


def test_dense_from_operator_recovers_a_nonsymmetric_matrix():
    M = np.random.default_rng(12).standard_normal((7, 7))
    calls = []

    def matvec(v):
        calls.append(v.copy())
        return M @ v

    dense = dense_from_operator(matvec, 7)
    assert dense.shape == (7, 7)
    np.testing.assert_array_equal(dense, M)
    assert len(calls) == 7
    np.testing.assert_array_equal(np.stack(calls), np.eye(7))


def test_layer_blocks_split_by_layer():
    model = MLP([3, 5, 4, 2])
    layout = model.layout
    N_ = model.num_params
    M = np.add.outer(1000 * np.arange(N_), np.arange(N_)).astype(float)
    blocks = layer_blocks(M, layout)
    sizes = [layer.params.stop - layer.params.start for layer in layout]
    assert sizes == [20, 24, 10]
    assert len(blocks) == 3 and all(len(row) == 3 for row in blocks)
    for i in range(3):
        for j in range(3):
            assert blocks[i][j].shape == (sizes[i], sizes[j])
    np.testing.assert_array_equal(blocks[1][2][0, 0], 1000 * 20 + 44)
    np.testing.assert_array_equal(np.block(blocks), M)
