"""Tests of mininn.linalg against dense numpy answers."""

import math

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import hessian, hessian_vector_product

from mininn.errors import MininnError, NonFiniteError, ShapeError, UnknownNameError
from mininn.linalg import (
    conjugate_gradient,
    hutchinson_diagonal,
    hutchinson_trace,
    lanczos,
    lanczos_tridiagonal,
    power_iteration,
    spectral_density,
)


def random_orthogonal(n, rng):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q


def matrix_with_spectrum(eigenvalues, rng):
    q = random_orthogonal(len(eigenvalues), rng)
    return (q * eigenvalues) @ q.T


def random_spd(n, condition_number, rng):
    return matrix_with_spectrum(np.logspace(0, np.log10(condition_number), n), rng)


def random_symmetric(n, rng):
    g = rng.standard_normal((n, n))
    return (g + g.T) / 2


def product_with(matrix):
    return lambda v: matrix @ v


def relu_mlp_hessian():
    """A 2-5-1 ReLU MLP with MSE on 20 points: (Hessian-vector product, dense Hessian)."""
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((20, 2))
    targets = np.sin(2 * inputs[:, :1])

    def loss(theta):
        w1, b1 = anp.reshape(theta[:10], (2, 5)), theta[10:15]
        w2, b2 = anp.reshape(theta[15:20], (5, 1)), theta[20:]
        hidden = anp.maximum(anp.dot(inputs, w1) + b1, 0.0)
        return 0.5 * anp.mean((anp.dot(hidden, w2) + b2 - targets) ** 2)

    theta = rng.standard_normal(21)
    dense = hessian(loss)(theta)
    hvp = hessian_vector_product(loss)
    return (lambda v: hvp(theta, v)), (dense + dense.T) / 2


def symmetric_test_matrices():
    """(name, matvec, dense matrix): a random symmetric matrix and a ReLU network Hessian."""
    matrix = random_symmetric(40, np.random.default_rng(1))
    relu_hvp, relu_dense = relu_mlp_hessian()
    return [("random", product_with(matrix), matrix), ("relu_hessian", relu_hvp, relu_dense)]


SYMMETRIC = symmetric_test_matrices()
SYMMETRIC_IDS = [name for name, _, _ in SYMMETRIC]


# ----------------------------------------------------------------------------- CG


def test_cg_solves_random_spd_system():
    rng = np.random.default_rng(0)
    a, b = random_spd(50, 1e3, rng), rng.standard_normal(50)
    exact = np.linalg.solve(a, b)
    result = conjugate_gradient(product_with(a), b, tol=1e-12)
    assert result.converged and result.reason == "converged"
    assert np.linalg.norm(b - a @ result.x) <= 1e-10 * np.linalg.norm(b)
    assert np.linalg.norm(result.x - exact) <= 1e-8 * np.linalg.norm(exact)
    assert result.residual_norm == pytest.approx(np.linalg.norm(b - a @ result.x), abs=1e-10)


def test_cg_warm_start_is_used_and_not_modified():
    rng = np.random.default_rng(1)
    a, b = random_spd(50, 1e3, rng), rng.standard_normal(50)
    exact = np.linalg.solve(a, b)
    x0 = exact + 1e-6 * rng.standard_normal(50)
    x0_before = x0.copy()
    cold = conjugate_gradient(product_with(a), b, tol=1e-12)
    warm = conjugate_gradient(product_with(a), b, x0=x0, tol=1e-12)
    assert np.array_equal(x0, x0_before)
    assert warm.phi[0] == pytest.approx(0.5 * x0 @ a @ x0 - b @ x0, rel=1e-12)
    assert warm.iterations < cold.iterations
    assert np.linalg.norm(warm.x - exact) <= 1e-8 * np.linalg.norm(exact)


def test_cg_already_solved_takes_no_step():
    a = random_spd(10, 10.0, np.random.default_rng(2))
    x = np.arange(10.0)
    result = conjugate_gradient(product_with(a), a @ x, x0=x)
    assert result.reason == "converged" and result.iterations == 0
    assert np.array_equal(result.x, x)


def test_diagonal_preconditioner_needs_fewer_iterations():
    rng = np.random.default_rng(3)
    n = 60
    coupling = random_symmetric(n, rng)
    well_conditioned = coupling + 2 * np.abs(coupling).sum(axis=1).max() * np.eye(n)
    scaling = np.diag(np.logspace(0, 3, n))
    a = scaling @ well_conditioned @ scaling
    b = rng.standard_normal(n)
    exact = np.linalg.solve(a, b)

    plain = conjugate_gradient(product_with(a), b, max_iters=1000)
    jacobi = conjugate_gradient(product_with(a), b, preconditioner=np.diag(a), max_iters=1000)
    as_callable = conjugate_gradient(
        product_with(a), b, preconditioner=lambda r: r / np.diag(a), max_iters=1000
    )
    assert plain.converged and jacobi.converged
    assert jacobi.iterations < plain.iterations / 3
    assert as_callable.iterations == jacobi.iterations
    np.testing.assert_allclose(as_callable.x, jacobi.x, rtol=1e-12)
    for result in (plain, jacobi):
        assert np.linalg.norm(result.x - exact) <= 1e-8 * np.linalg.norm(exact)


def test_cg_stops_on_negative_curvature_with_last_iterate():
    rng = np.random.default_rng(4)
    eigenvalues = np.concatenate([np.linspace(1.0, 10.0, 29), [-1.0]])
    a, b = matrix_with_spectrum(eigenvalues, rng), rng.standard_normal(30)
    result = conjugate_gradient(product_with(a), b)
    assert result.reason == "negative_curvature" and not result.converged
    assert 0 < result.iterations < 30
    truncated = conjugate_gradient(product_with(a), b, max_iters=result.iterations)
    assert truncated.reason == "max_iters"
    np.testing.assert_array_equal(result.x, truncated.x)
    assert len(result.phi) == result.iterations + 1


def test_cg_negative_curvature_at_first_step_returns_start():
    x0 = np.ones(5)
    result = conjugate_gradient(lambda v: -v, np.arange(1.0, 6.0), x0=x0)
    assert result.reason == "negative_curvature" and result.iterations == 0
    np.testing.assert_array_equal(result.x, x0)


def test_phi_decreases_and_matches_the_quadratic_model():
    rng = np.random.default_rng(5)
    a, b = random_spd(40, 1e3, rng), rng.standard_normal(40)
    result = conjugate_gradient(product_with(a), b, store_iterates=True)
    decrease = np.diff(result.phi)
    assert np.all(decrease[:20] < 0)
    assert np.all(decrease <= 1e-12 * abs(result.phi[-1]))  # flat only at rounding level
    for iteration, x in result.iterates:
        assert result.phi[iteration] == pytest.approx(0.5 * x @ a @ x - b @ x, rel=1e-9)
    assert result.phi[-1] == pytest.approx(-0.5 * b @ np.linalg.solve(a, b), rel=1e-10)


def martens_test_holds(phi, i, eps):
    """Martens' relative-progress test after CG iteration i (phi[i]: the quadratic's value there)."""
    k = max(10, math.ceil(0.1 * i))
    return i > k and phi[i] < 0 and (phi[i] - phi[i - k]) / phi[i] < k * eps


def test_martens_stop_fires_early_near_the_optimum():
    rng = np.random.default_rng(0)
    a, b = random_spd(500, 1e4, rng), rng.standard_normal(500)
    optimum = -0.5 * b @ np.linalg.solve(a, b)
    eps = 5e-4
    result = conjugate_gradient(product_with(a), b, martens_stop=True, martens_eps=eps)
    assert result.reason == "martens"
    assert result.iterations < 250
    assert 0.97 < result.phi[-1] / optimum <= 1.0

    assert martens_test_holds(result.phi, result.iterations, eps)
    assert not any(martens_test_holds(result.phi, i, eps) for i in range(result.iterations))
    assert conjugate_gradient(product_with(a), b).reason == "max_iters"


def test_stored_iterates_follow_the_martens_schedule():
    rng = np.random.default_rng(0)
    a, b = random_spd(200, 1e4, rng), rng.standard_normal(200)
    result = conjugate_gradient(product_with(a), b, max_iters=40, store_iterates=True)
    assert [i for i, _ in result.iterates] == [5, 7, 9, 11, 15, 19, 25, 32, 40]
    np.testing.assert_array_equal(result.iterates[-1][1], result.x)
    for iteration, x in result.iterates[:-1]:
        direct = conjugate_gradient(product_with(a), b, max_iters=iteration)
        np.testing.assert_allclose(x, direct.x, rtol=0, atol=1e-12)

    on_schedule = conjugate_gradient(product_with(a), b, max_iters=32, store_iterates=True)
    assert [i for i, _ in on_schedule.iterates] == [5, 7, 9, 11, 15, 19, 25, 32]
    assert conjugate_gradient(product_with(a), b, max_iters=40).iterates == []


# ----------------------------------------------------------------------------- eigenvalues


@pytest.mark.parametrize(("name", "matvec", "dense"), SYMMETRIC, ids=SYMMETRIC_IDS)
def test_power_iteration_finds_largest_magnitude_eigenpair(name, matvec, dense):
    eigenvalues, eigenvectors = np.linalg.eigh(dense)
    top = np.argmax(np.abs(eigenvalues))
    value, vector = power_iteration(matvec, dense.shape[0], num_iters=5000, tol=1e-12)
    assert value == pytest.approx(eigenvalues[top], rel=1e-9)
    assert abs(vector @ eigenvectors[:, top]) == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("which", ["largest", "smallest"])
@pytest.mark.parametrize(("name", "matvec", "dense"), SYMMETRIC, ids=SYMMETRIC_IDS)
def test_lanczos_matches_eigh(name, matvec, dense, which):
    n = dense.shape[0]
    eigenvalues, eigenvectors = np.linalg.eigh(dense)
    expected = slice(None, 3) if which == "smallest" else slice(None, -4, -1)
    values, vectors = lanczos(matvec, n, num_iters=n, k=3, which=which)
    np.testing.assert_allclose(values, eigenvalues[expected], rtol=1e-8, atol=1e-10)
    assert vectors.shape == (n, 3)
    overlaps = np.abs(np.sum(vectors * eigenvectors[:, expected], axis=0))
    np.testing.assert_allclose(overlaps, 1.0, atol=1e-8)


def test_lanczos_extremes_converge_before_dimension():
    rng = np.random.default_rng(6)
    bulk = rng.uniform(-1.0, 1.0, 294)
    eigenvalues = np.concatenate([bulk, [5.0, 4.0, 3.0, -3.0, -4.0, -5.0]])
    a = matrix_with_spectrum(eigenvalues, rng)
    largest, _ = lanczos(product_with(a), 300, num_iters=40, k=3)
    smallest, _ = lanczos(product_with(a), 300, num_iters=40, k=3, which="smallest")
    np.testing.assert_allclose(largest, [5.0, 4.0, 3.0], rtol=1e-8)
    np.testing.assert_allclose(smallest, [-5.0, -4.0, -3.0], rtol=1e-8)


def test_lanczos_tridiagonal_is_an_orthonormal_projection():
    rng = np.random.default_rng(7)
    a = random_symmetric(50, rng)
    alphas, betas, basis = lanczos_tridiagonal(product_with(a), 50, num_iters=20)
    assert alphas.shape == (20,) and betas.shape == (19,) and basis.shape == (50, 20)
    np.testing.assert_allclose(basis.T @ basis, np.eye(20), atol=1e-12)
    tridiagonal = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    np.testing.assert_allclose(basis.T @ a @ basis, tridiagonal, atol=1e-10)


def test_lanczos_stops_at_breakdown():
    a = np.diag(np.repeat([1.0, 2.0], 10))
    alphas, betas, basis = lanczos_tridiagonal(product_with(a), 20, num_iters=10)
    assert alphas.size == 2 and betas.size == 1 and basis.shape == (20, 2)
    values, _ = lanczos(product_with(a), 20, num_iters=10, k=2)
    np.testing.assert_allclose(values, [2.0, 1.0], rtol=1e-12)
    with pytest.raises(MininnError, match="broke down after 2 steps"):
        lanczos(product_with(a), 20, num_iters=10, k=3)


# ----------------------------------------------------------------------------- stochastic


def test_hutchinson_trace_within_three_standard_errors():
    _, dense = relu_mlp_hessian()
    estimate, standard_error = hutchinson_trace(product_with(dense), 21, num_samples=400)
    assert abs(estimate - np.trace(dense)) <= 3 * standard_error
    off_diagonal = dense - np.diag(np.diag(dense))
    expected_error = np.sqrt(2 * np.sum(off_diagonal**2) / 400)
    assert 0.7 < standard_error / expected_error < 1.4


def test_hutchinson_diagonal_converges_to_diagonal():
    a = random_spd(30, 1e2, np.random.default_rng(8))
    exact = np.diag(a)
    few = hutchinson_diagonal(product_with(a), 30, num_samples=20)
    many = hutchinson_diagonal(product_with(a), 30, num_samples=2000)
    assert np.linalg.norm(many - exact) < np.linalg.norm(few - exact) / 3
    entry_std = np.sqrt((np.sum(a**2, axis=1) - exact**2) / 2000)
    assert np.all(np.abs(many - exact) <= 4 * entry_std)


def test_rademacher_probes_are_exact_on_a_diagonal_matrix():
    diagonal = np.linspace(-1.0, 3.0, 12)
    estimate, standard_error = hutchinson_trace(lambda v: diagonal * v, 12, num_samples=5)
    assert estimate == pytest.approx(diagonal.sum(), rel=1e-14) and standard_error < 1e-14
    np.testing.assert_allclose(
        hutchinson_diagonal(lambda v: diagonal * v, 12, num_samples=1), diagonal, rtol=1e-14
    )


def two_cluster_matrix():
    """A 200-by-200 symmetric matrix: 70% of eigenvalues in [-0.1, 0.1], 30% in [9, 11]."""
    rng = np.random.default_rng(9)
    eigenvalues = np.concatenate([rng.uniform(-0.1, 0.1, 140), rng.uniform(9.0, 11.0, 60)])
    return matrix_with_spectrum(eigenvalues, rng), eigenvalues


def test_spectral_density_integrates_to_one_with_mass_at_eigenvalues():
    a, eigenvalues = two_cluster_matrix()
    grid, density = spectral_density(product_with(a), 200, num_iters=30, num_runs=10)
    assert grid.shape == density.shape == (500,)
    assert np.all(density >= 0)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-3)
    low = grid < 5.0
    assert np.trapezoid(density[low], grid[low]) == pytest.approx(0.7, abs=0.05)
    far_from_spectrum = (grid > 0.5) & (grid < 8.5)
    assert density[far_from_spectrum].max() < 1e-3 * density.max()


def test_spectral_density_mean_is_normalised_trace():
    a, eigenvalues = two_cluster_matrix()
    num_runs = 8
    grid, density = spectral_density(product_with(a), 200, num_iters=30, num_runs=num_runs)
    mean = np.trapezoid(grid * density, grid)
    # v^T A v for a random unit v has mean trace/n and variance 2 var(eigenvalues) / (n + 2).
    standard_error = np.sqrt(2 * eigenvalues.var() / (200 + 2) / num_runs)
    assert abs(mean - eigenvalues.mean()) <= 4 * standard_error


def test_spectral_density_on_custom_grid_and_degenerate_spectrum():
    grid = np.linspace(0.0, 2.0, 2001)
    _, density = spectral_density(lambda v: v, 10, num_iters=5, grid=grid, sigma=0.05)
    assert grid[np.argmax(density)] == pytest.approx(1.0)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-6)
    default_grid, default_density = spectral_density(lambda v: v, 10, num_iters=5)
    assert default_grid[np.argmax(default_density)] == pytest.approx(1.0, abs=1e-3)


# ----------------------------------------------------------------------------- bad input


def test_conjugate_gradient_rejects_bad_input():
    identity = lambda v: v  # noqa: E731
    with pytest.raises(NonFiniteError, match="b contains NaN"):
        conjugate_gradient(identity, np.array([1.0, np.inf]))
    with pytest.raises(ShapeError, match="b must be a 1-D array"):
        conjugate_gradient(identity, np.ones((2, 2)))
    with pytest.raises(ShapeError, match=r"x0 must have shape \(3,\)"):
        conjugate_gradient(identity, np.ones(3), x0=np.ones(4))
    with pytest.raises(NonFiniteError, match="matvec returned NaN"):
        conjugate_gradient(lambda v: np.full_like(v, np.nan), np.ones(3))
    with pytest.raises(ShapeError, match="matvec returned shape"):
        conjugate_gradient(lambda v: v[:-1], np.ones(3))
    with pytest.raises(ValueError, match="max_iters must be a positive integer"):
        conjugate_gradient(identity, np.ones(3), max_iters=0)
    with pytest.raises(ValueError, match="preconditioner must be positive"):
        conjugate_gradient(identity, np.ones(3), preconditioner=np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ShapeError, match="preconditioner must have shape"):
        conjugate_gradient(identity, np.ones(3), preconditioner=np.ones(2))


def test_eigen_routines_reject_bad_input():
    identity = lambda v: v  # noqa: E731
    with pytest.raises(UnknownNameError, match="which must be one of"):
        lanczos(identity, 5, num_iters=5, which="middle")
    with pytest.raises(ValueError, match="k = 6 eigenpairs"):
        lanczos(identity, 5, num_iters=10, k=6)
    with pytest.raises(NonFiniteError, match="matvec returned NaN"):
        power_iteration(lambda v: v * np.nan, 4)
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        hutchinson_trace(identity, 0)
    with pytest.raises(ValueError, match="at least 2"):
        hutchinson_trace(identity, 3, num_samples=1)
    with pytest.raises(ValueError, match="sigma must be positive"):
        spectral_density(identity, 3, sigma=-1.0)
    with pytest.raises(ShapeError, match=r"start must have shape \(4,\)"):
        lanczos_tridiagonal(identity, 4, num_iters=2, start=np.ones(3))


def test_cg_stops_cleanly_on_zero_curvature():
    result = conjugate_gradient(lambda v: np.zeros_like(v), np.ones(3))
    assert result.reason == "negative_curvature" and result.iterations == 0
    np.testing.assert_array_equal(result.x, 0.0)


@pytest.mark.parametrize("eps", [5e-2, 1e-2])
def test_martens_stop_fires_exactly_when_its_test_first_holds(eps):
    rng = np.random.default_rng(0)
    a, b = random_spd(300, 1e4, rng), rng.standard_normal(300)
    result = conjugate_gradient(product_with(a), b, martens_stop=True, martens_eps=eps)
    assert result.reason == "martens" and result.iterations < 100  # before k = 0.1 i exceeds 10
    assert martens_test_holds(result.phi, result.iterations, eps)
    assert not any(martens_test_holds(result.phi, i, eps) for i in range(result.iterations))


def test_martens_stop_waits_for_negative_phi():
    # A warm start far from the solution keeps phi positive for a while: no Martens stop there.
    rng = np.random.default_rng(1)
    a, b = random_spd(200, 1e3, rng), rng.standard_normal(200)
    x0 = 1e3 * rng.standard_normal(200)
    result = conjugate_gradient(product_with(a), b, x0=x0, martens_stop=True, martens_eps=5e-2)
    positive = [i for i, value in enumerate(result.phi) if value >= 0]
    assert positive and result.iterations > max(positive)
