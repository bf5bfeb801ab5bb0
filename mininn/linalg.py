"""Matrix-free linear algebra for curvature matrices.

Every routine takes ``matvec``, a callable that maps a 1-D float64 array ``v``
of shape (n,) to the product ``A v`` of shape (n,), where ``A`` is a symmetric
n-by-n matrix (a Hessian, a Gauss-Newton matrix, ...) that is never formed.
Random numbers come from ``np.random.default_rng(seed)`` (or a Generator passed as
``seed``), so results are
reproducible.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import ArgumentError, MininnError, NonFiniteError, ShapeError
from .validation import generator, non_negative, norm, one_of, positive, positive_int, vector

LANCZOS_WHICH = ("largest", "smallest")

# Lanczos stops when the new residual is this small relative to ||A q_j||:
# the Krylov space is then invariant under A (up to rounding).
_BREAKDOWN_RTOL = 1e-10


# ----------------------------------------------------------------------------- checks


def _apply(matvec, x):
    """Return ``matvec(x)`` after checking its shape and finiteness."""
    product = np.asarray(matvec(x), dtype=np.float64)
    if product.shape != x.shape:
        raise ShapeError(
            f"matvec returned shape {product.shape} for an input of shape {x.shape}; "
            "it must return a 1-D array of the same shape as its input."
        )
    if not np.all(np.isfinite(product)):
        raise NonFiniteError(
            "matvec returned NaN or infinity; check the parameters and data it uses "
            "(or add damping if the curvature overflows)."
        )
    return product


def _preconditioner_solver(preconditioner, size):
    """Return a callable r -> M^{-1} r for the ``preconditioner`` argument of CG."""
    if preconditioner is None:
        return lambda residual: residual
    if callable(preconditioner):
        return lambda residual: _apply(preconditioner, residual)
    diagonal = vector("preconditioner", preconditioner, size=size)
    if np.any(diagonal <= 0):
        raise ArgumentError(
            "a diagonal preconditioner must be positive; add damping, e.g. (diag + lam) ** 0.75."
        )
    return lambda residual: residual / diagonal


def _tridiagonal(alphas, betas):
    """Dense symmetric tridiagonal matrix with diagonal ``alphas`` and off-diagonal ``betas``."""
    return np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)


def _rademacher(rng, dim):
    """A vector of shape (dim,) with independent entries +1 or -1, each with probability 1/2."""
    return rng.choice(np.array([-1.0, 1.0]), size=dim)


# ----------------------------------------------------------------------------- CG


@dataclass(frozen=True)
class CGResult:
    """Outcome of :func:`conjugate_gradient`.

    Attributes
    ----------
    x : ndarray of shape (n,)
        The returned iterate.
    iterations : int
        Number of completed CG steps (matrix-vector products spent on steps).
    reason : str
        Why CG stopped: "converged" (relative residual below ``tol``), "martens"
        (relative-progress test), "negative_curvature" (a direction with
        p^T A p <= 0 was met) or "max_iters".
    residual_norm : float
        Norm of the residual b - A x of the returned iterate.
    phi : list of float
        Values of the quadratic model 1/2 x^T A x - b^T x; ``phi[i]`` belongs to
        iterate i, ``phi[0]`` to the starting point.
    iterates : list of tuple
        Pairs (iteration, copy of x) stored when ``store_iterates`` is true; empty
        otherwise.
    """

    x: np.ndarray
    iterations: int
    reason: str
    residual_norm: float
    phi: list = field(default_factory=list)
    iterates: list = field(default_factory=list)

    @property
    def converged(self):
        """True when the relative residual fell below the tolerance."""
        return self.reason == "converged"


def _martens_progress_stalled(phi, eps):
    """Martens' (2010) test on the model values ``phi[0..i]`` of iterates 0..i."""
    i = len(phi) - 1
    k = max(10, math.ceil(0.1 * i))
    return i > k and phi[i] < 0 and (phi[i] - phi[i - k]) / phi[i] < k * eps


def conjugate_gradient(
    matvec,
    b,
    x0=None,
    preconditioner=None,
    max_iters=250,
    tol=1e-10,
    martens_stop=False,
    martens_eps=5e-4,
    store_iterates=False,
):
    """Solve A x = b with preconditioned conjugate gradients, A given by products.

    CG minimises the quadratic model phi(x) = 1/2 x^T A x - b^T x. Each step
    costs one call of ``matvec``; the model value is tracked for free as
    phi(x) = -1/2 x^T (b + r) with the residual r = b - A x.

    Parameters
    ----------
    matvec : callable
        Maps an ndarray of shape (n,) to A times it, shape (n,). A should be
        symmetric; it need not be positive definite (see ``reason``).
    b : ndarray of shape (n,)
        Right-hand side.
    x0 : ndarray of shape (n,), optional
        Starting point (a warm start); zeros when omitted. It is not modified.
    preconditioner : ndarray of shape (n,) or callable, optional
        Either the positive diagonal m of a diagonal preconditioner M (then
        M^{-1} r = r / m), or a callable r -> M^{-1} r. M must be symmetric
        positive definite.
    max_iters : int
        Most CG steps.
    tol : float
        Stop when ||r|| <= tol * ||b|| (relative residual).
    martens_stop : bool
        Also stop at iteration i when i > k, phi_i < 0 and
        (phi_i - phi_{i-k}) / phi_i < k * martens_eps, with k = max(10, ceil(i / 10))
        (Martens, 2010).
    martens_eps : float
        The epsilon of that test.
    store_iterates : bool
        Store copies of the iterates at i = ceil(5 * 1.3^j), j = 0, 1, 2, ...
        (5, 7, 9, 11, 15, ...) and of the returned iterate, for Martens'
        CG-backtracking.

    Returns
    -------
    CGResult
        ``reason`` says why CG stopped. On "negative_curvature" (p^T A p <= 0 for
        the next search direction p) ``x`` is the last iterate before that step,
        which is ``x0`` (or zeros) if it happens at the first step.

    Raises
    ------
    ShapeError
        If ``b`` is not 1-D, ``x0`` or the preconditioner does not match it, or
        ``matvec`` returns another shape.
    NonFiniteError
        If ``b``, ``x0`` or a product contains NaN or infinity.
    """
    b = vector("b", b)
    max_iters = positive_int("max_iters", max_iters)
    apply_preconditioner = _preconditioner_solver(preconditioner, b.size)
    if x0 is None:
        x = np.zeros_like(b)
        residual = b.copy()
    else:
        x = vector("x0", x0, size=b.size).copy()
        residual = b - _apply(matvec, x)

    threshold = tol * np.linalg.norm(b)
    phi = [-0.5 * x @ (b + residual)]
    iterates = []
    save_index, next_saved = 0, 5
    preconditioned = apply_preconditioner(residual)
    direction = preconditioned.copy()
    residual_dot = residual @ preconditioned

    iteration = 0
    reason = "converged" if np.linalg.norm(residual) <= threshold else None
    while reason is None:
        if iteration == max_iters:
            reason = "max_iters"
            break
        product = _apply(matvec, direction)
        curvature = direction @ product
        if curvature <= 0:
            reason = "negative_curvature"
            break
        step = residual_dot / curvature
        x += step * direction
        residual -= step * product
        iteration += 1
        phi.append(-0.5 * x @ (b + residual))
        if store_iterates and iteration == next_saved:
            iterates.append((iteration, x.copy()))
            save_index += 1
            next_saved = math.ceil(5 * 1.3**save_index)

        if np.linalg.norm(residual) <= threshold:
            reason = "converged"
        elif martens_stop and _martens_progress_stalled(phi, martens_eps):
            reason = "martens"
        else:
            preconditioned = apply_preconditioner(residual)
            new_residual_dot = residual @ preconditioned
            direction = preconditioned + (new_residual_dot / residual_dot) * direction
            residual_dot = new_residual_dot

    if store_iterates and (not iterates or iterates[-1][0] != iteration):
        iterates.append((iteration, x.copy()))
    return CGResult(
        x=x,
        iterations=iteration,
        reason=reason,
        residual_norm=float(np.linalg.norm(residual)),
        phi=[float(value) for value in phi],
        iterates=iterates,
    )


# ----------------------------------------------------------------------------- trust-region CG

#: Why :func:`steihaug_cg` stopped.
STEIHAUG_REASONS = ("converged", "negative_curvature", "boundary", "max_iters")


@dataclass(frozen=True)
class SteihaugResult:
    """Outcome of :func:`steihaug_cg`.

    Attributes
    ----------
    step : ndarray of shape (n,)
        The approximate minimiser p of the model inside the trust region.
    reason : str
        One of ``STEIHAUG_REASONS``: "converged" (residual below the tolerance inside
        the region), "negative_curvature" (a direction with d^T B d <= 0 was met; p is
        the better of the two points where that line leaves the region), "boundary"
        (the next CG iterate would leave the region; p is where the step crosses the
        boundary) or "max_iters" (p is the last iterate, inside the region).
    iterations : int
        Products with B, one per CG iteration, counting the one that met negative
        curvature or the boundary.
    hits_boundary : bool
        True when ``|p| = radius`` (reasons "negative_curvature" and "boundary").
    model_change : float
        ``m(p) - m(0) = g.p + p.B p / 2``, the model's predicted change of the objective,
        computed from the products CG made (no extra product).
    """

    step: np.ndarray
    reason: str
    iterations: int
    hits_boundary: bool
    model_change: float


def _boundary_crossings(z, d, radius):
    """The two t, low first, with ``|z + t d| = radius``, for ``|z| < radius`` and d != 0.

    Solved on the unit sphere, for ``s = t |d| / radius`` with ``|z / radius + s d / |d|| = 1``,
    so that no square under- or overflows however small the radius; the roots of
    ``s^2 + b s + c`` (c < 0) are formed without cancellation (Golub & Van Loan).
    """
    length = norm(d)
    w, u = z / radius, d / length
    b, c = 2.0 * (w @ u), w @ w - 1.0
    aux = b + math.copysign(math.sqrt(b * b - 4.0 * c), b)
    scale = radius / length
    return sorted([-0.5 * aux * scale, -2.0 * c / aux * scale])


def steihaug_cg(matvec, gradient, radius, tol=0.1, max_iters=250):
    """Minimise the model ``m(p) = g.p + p.B p / 2`` subject to ``|p| <= radius`` (Steihaug-Toint CG).

    Conjugate gradients on ``B p = -g`` from p = 0, truncated as in Nocedal & Wright
    (2006), Algorithm 7.2: an iterate that would leave the region is replaced by the
    point where the CG step crosses the boundary, and a direction d of non-positive
    curvature, ``d^T B d <= 0``, ends CG at whichever of the two boundary points
    ``z + t d`` has the lower model value. B need not be positive definite. The first
    CG step is along -g, so the model decreases at least as much as at the Cauchy
    point. The stopping tests (the next iterate ``|z| >= radius``, then the residual
    ``|r| < tol |g|``) are those of scipy's ``trust-ncg`` subproblem.

    Parameters
    ----------
    matvec : callable
        Maps an ndarray of shape (n,) to B times it, shape (n,); B symmetric.
    gradient : ndarray of shape (n,)
        The model's gradient g at p = 0.
    radius : float
        Trust-region radius, > 0.
    tol : float
        Relative tolerance: stop inside the region when the residual ``|g + B p|`` is
        below ``tol * |g|`` (a trust-region method uses ``min(0.5, sqrt(|g|))``).
    max_iters : int
        Most CG iterations (products with B).

    Returns
    -------
    SteihaugResult
        A zero gradient gives p = 0 with reason "converged" and no product.

    Raises
    ------
    ShapeError
        If ``gradient`` is not 1-D or ``matvec`` returns another shape.
    NonFiniteError
        If ``gradient`` or a product contains NaN or infinity.
    """
    g = vector("gradient", gradient)
    radius = positive("radius", radius)
    threshold = non_negative("tol", tol) * np.linalg.norm(g)
    max_iters = positive_int("max_iters", max_iters)
    z, curvature_z = np.zeros_like(g), np.zeros_like(g)  # the iterate and B z
    if not np.any(g):
        return SteihaugResult(z, "converged", 0, False, 0.0)
    residual = g.copy()  # g + B z, the model's gradient at z
    direction = -residual
    for iteration in range(1, max_iters + 1):
        product = _apply(matvec, direction)
        curvature = direction @ product
        if curvature <= 0:
            low, high = (_on_line(g, z, curvature_z, t, direction, product)
                         for t in _boundary_crossings(z, direction, radius))
            step, change = low if low[1] < high[1] else high
            return SteihaugResult(step, "negative_curvature", iteration, True, change)
        residual_squared = residual @ residual
        alpha = residual_squared / curvature
        z_next = z + alpha * direction
        if np.linalg.norm(z_next) >= radius:
            t = _boundary_crossings(z, direction, radius)[1]
            step, change = _on_line(g, z, curvature_z, t, direction, product)
            return SteihaugResult(step, "boundary", iteration, True, change)
        z, curvature_z = z_next, curvature_z + alpha * product
        residual = residual + alpha * product
        new_residual_squared = residual @ residual
        if math.sqrt(new_residual_squared) < threshold:
            return SteihaugResult(z, "converged", iteration, False, _model_change(g, z, curvature_z))
        direction = -residual + (new_residual_squared / residual_squared) * direction
    return SteihaugResult(z, "max_iters", max_iters, False, _model_change(g, z, curvature_z))


def _model_change(g, p, curvature_p):
    """``g.p + p.B p / 2`` given ``curvature_p = B p``."""
    return float(g @ p + 0.5 * p @ curvature_p)


def _on_line(g, z, curvature_z, t, d, curvature_d):
    """``(p, model change at p)`` for ``p = z + t d``, given B z and B d."""
    p = z + t * d
    return p, _model_change(g, p, curvature_z + t * curvature_d)


# ----------------------------------------------------------------------------- eigenvalues


def power_iteration(matvec, dim, num_iters=200, tol=1e-10, seed=0):
    """Eigenpair of largest absolute eigenvalue of a symmetric operator.

    Repeats v <- A v / ||A v|| from a random unit vector and returns the
    Rayleigh quotient v^T A v. Convergence is linear with rate abs(lambda_2 / lambda_1);
    if the two largest eigenvalues have equal size and opposite sign it does
    not converge (use :func:`lanczos`).

    Parameters
    ----------
    matvec : callable
        Maps an ndarray of shape (dim,) to A times it.
    dim : int
        Size n of the operator.
    num_iters : int
        Most products.
    tol : float
        Stop when the residual ||A v - lambda v|| <= tol * abs(lambda).
    seed : int
        Seed of the random start vector.

    Returns
    -------
    eigenvalue : float
        The Rayleigh quotient (signed).
    eigenvector : ndarray of shape (dim,)
        The unit-norm iterate v.
    """
    dim = positive_int("dim", dim)
    num_iters = positive_int("num_iters", num_iters)
    iterate = generator("seed", seed).standard_normal(dim)
    iterate /= np.linalg.norm(iterate)
    eigenvalue = 0.0
    for _ in range(num_iters):
        product = _apply(matvec, iterate)
        eigenvalue = float(iterate @ product)
        product_norm = np.linalg.norm(product)
        if product_norm == 0.0:
            break
        converged = np.linalg.norm(product - eigenvalue * iterate) <= tol * abs(eigenvalue)
        iterate = product / product_norm
        if converged:
            break
    return eigenvalue, iterate


def lanczos_tridiagonal(matvec, dim, num_iters, seed=0, start=None):
    """Lanczos tridiagonalisation with full reorthogonalisation.

    Builds an orthonormal basis Q of the Krylov space span{q, A q, A^2 q, ...}
    and the tridiagonal T = Q^T A Q. Each step costs one product; each new basis
    vector is orthogonalised twice against all previous ones, so Q stays
    orthonormal to rounding. If the space becomes invariant (breakdown: the new
    residual is below 1e-10 times ||A q_j||) the process stops early.

    Parameters
    ----------
    matvec : callable
        Maps an ndarray of shape (dim,) to A times it; A symmetric.
    dim : int
        Size n of the operator.
    num_iters : int
        Most steps m (capped at ``dim``).
    seed : int
        Seed of the random start vector; ignored when ``start`` is given.
    start : ndarray of shape (dim,), optional
        Start vector (normalised here).

    Returns
    -------
    alphas : ndarray of shape (m,)
        Diagonal of T.
    betas : ndarray of shape (m - 1,)
        Off-diagonal of T.
    Q : ndarray of shape (dim, m)
        Orthonormal columns, the first being the normalised start vector.
    """
    dim = positive_int("dim", dim)
    steps = min(positive_int("num_iters", num_iters), dim)
    if start is None:
        start = generator("seed", seed).standard_normal(dim)
    start = vector("start", start, size=dim)
    start_norm = np.linalg.norm(start)
    if start_norm == 0.0:
        raise ArgumentError("start must be a nonzero vector.")

    basis = np.empty((dim, steps))
    basis[:, 0] = start / start_norm
    alphas, betas = [], []
    for j in range(steps):
        residual = _apply(matvec, basis[:, j])
        product_norm = np.linalg.norm(residual)
        alphas.append(basis[:, j] @ residual)
        if j == steps - 1:
            break
        previous = basis[:, : j + 1]
        for _ in range(2):
            residual -= previous @ (previous.T @ residual)
        beta = np.linalg.norm(residual)
        if beta <= _BREAKDOWN_RTOL * product_norm:
            break
        betas.append(beta)
        basis[:, j + 1] = residual / beta
    return np.array(alphas), np.array(betas), basis[:, : len(alphas)]


def lanczos(matvec, dim, num_iters, k=1, which="largest", seed=0):
    """Extreme eigenpairs of a symmetric operator by the Lanczos method.

    Returns Ritz pairs: eigenpairs of the tridiagonal T from
    :func:`lanczos_tridiagonal`, lifted back by Q. The extreme ones converge
    first; with ``num_iters >= dim`` they are exact up to rounding. Lanczos sees
    each distinct eigenvalue once, so a repeated eigenvalue is returned once.

    Parameters
    ----------
    matvec : callable
        Maps an ndarray of shape (dim,) to A times it; A symmetric.
    dim : int
        Size n of the operator.
    num_iters : int
        Lanczos steps (products).
    k : int
        Number of eigenpairs, at most ``min(num_iters, dim)``.
    which : str
        "largest" (algebraically largest, returned in descending order) or
        "smallest" (ascending order).
    seed : int
        Seed of the random start vector.

    Returns
    -------
    eigenvalues : ndarray of shape (k,)
        Ritz values.
    eigenvectors : ndarray of shape (dim, k)
        Unit Ritz vectors as columns, in the order of ``eigenvalues``.

    Raises
    ------
    UnknownNameError
        If ``which`` is not "largest" or "smallest".
    MininnError
        If the Krylov space became invariant after fewer than k steps.
    """
    one_of("which", which, LANCZOS_WHICH)
    k = positive_int("k", k)
    if k > min(num_iters, dim):
        raise ArgumentError(f"k = {k} eigenpairs need num_iters >= k and dim >= k.")
    alphas, betas, basis = lanczos_tridiagonal(matvec, dim, num_iters, seed=seed)
    if alphas.size < k:
        raise MininnError(
            f"Lanczos broke down after {alphas.size} steps (the start vector lies in an "
            f"invariant subspace), so only {alphas.size} Ritz pairs exist; ask for fewer."
        )
    ritz_values, ritz_coordinates = np.linalg.eigh(_tridiagonal(alphas, betas))
    order = np.arange(k) if which == "smallest" else np.arange(alphas.size)[::-1][:k]
    return ritz_values[order], basis @ ritz_coordinates[:, order]


# ----------------------------------------------------------------------------- stochastic


def hutchinson_trace(matvec, dim, num_samples=100, seed=0):
    """Hutchinson's estimate of trace(A) with Rademacher probes.

    Averages z^T A z over independent probes z with entries +-1; each probe
    costs one product.

    Parameters
    ----------
    matvec : callable
        Maps an ndarray of shape (dim,) to A times it.
    dim : int
        Size n of the operator.
    num_samples : int
        Number of probes, at least 2 (for the standard error).
    seed : int
        Seed of the probes.

    Returns
    -------
    estimate : float
        Mean of z^T A z.
    standard_error : float
        Sample standard deviation of z^T A z divided by sqrt(num_samples).
    """
    dim = positive_int("dim", dim)
    if positive_int("num_samples", num_samples) < 2:
        raise ArgumentError("num_samples must be at least 2 to estimate a standard error.")
    rng = generator("seed", seed)
    samples = np.empty(num_samples)
    for index in range(num_samples):
        probe = _rademacher(rng, dim)
        samples[index] = probe @ _apply(matvec, probe)
    return float(samples.mean()), float(samples.std(ddof=1) / np.sqrt(num_samples))


def hutchinson_diagonal(matvec, dim, num_samples=100, seed=0):
    """Estimate of diag(A): the mean of z * (A z) over Rademacher probes z.

    Unbiased; the error of entry i shrinks like sqrt(sum_{j != i} A_ij^2 / num_samples).

    Parameters
    ----------
    matvec : callable
        Maps an ndarray of shape (dim,) to A times it.
    dim : int
        Size n of the operator.
    num_samples : int
        Number of probes (products).
    seed : int
        Seed of the probes.

    Returns
    -------
    ndarray of shape (dim,)
        The estimated diagonal.
    """
    dim = positive_int("dim", dim)
    num_samples = positive_int("num_samples", num_samples)
    rng = generator("seed", seed)
    total = np.zeros(dim)
    for _ in range(num_samples):
        probe = _rademacher(rng, dim)
        total += probe * _apply(matvec, probe)
    return total / num_samples


def spectral_density(
    matvec, dim, num_iters=60, num_runs=5, grid=None, num_points=500, sigma=None, seed=0
):
    """Smoothed eigenvalue density by stochastic Lanczos quadrature.

    Each run starts Lanczos from a random unit vector v; the eigenvalues of T
    (nodes) with weights (first components of T's eigenvectors)^2 form a
    quadrature rule with sum_j w_j f(node_j) ~ v^T f(A) v, whose expectation is
    trace(f(A)) / dim (Ubaru, Chen & Saad, 2017; Ghorbani, Krishnan & Xiao,
    2019). The density is the average over runs of sum_j w_j g(x - node_j),
    g the Gaussian of standard deviation ``sigma``, so it integrates to 1.

    Parameters
    ----------
    matvec : callable
        Maps an ndarray of shape (dim,) to A times it; A symmetric.
    dim : int
        Size n of the operator.
    num_iters : int
        Lanczos steps per run.
    num_runs : int
        Number of random start vectors.
    grid : ndarray of shape (p,), optional
        Points where the density is evaluated. By default ``num_points`` evenly
        spaced points from (smallest node - 5 sigma) to (largest node + 5 sigma).
    num_points : int
        Size of the default grid.
    sigma : float, optional
        Width of the Gaussian kernel. By default 1/100 of the spread of the
        nodes (largest - smallest), or 1/100 of max(1, abs(node)) if all nodes
        coincide.
    seed : int
        Seed of the start vectors.

    Returns
    -------
    grid : ndarray of shape (p,)
        Evaluation points.
    density : ndarray of shape (p,)
        Density values on the grid.
    """
    dim = positive_int("dim", dim)
    num_runs = positive_int("num_runs", num_runs)
    if sigma is not None:
        sigma = positive("sigma", sigma)
    rng = generator("seed", seed)
    nodes, weights = [], []
    for _ in range(num_runs):
        alphas, betas, _ = lanczos_tridiagonal(
            matvec, dim, num_iters, start=rng.standard_normal(dim)
        )
        run_nodes, run_vectors = np.linalg.eigh(_tridiagonal(alphas, betas))
        nodes.append(run_nodes)
        weights.append(run_vectors[0] ** 2 / num_runs)
    nodes, weights = np.concatenate(nodes), np.concatenate(weights)

    if sigma is None:
        spread = nodes.max() - nodes.min()
        sigma = 0.01 * (spread if spread > 0 else max(1.0, np.abs(nodes).max()))
    if grid is None:
        num_points = positive_int("num_points", num_points)
        grid = np.linspace(nodes.min() - 5 * sigma, nodes.max() + 5 * sigma, num_points)
    grid = vector("grid", grid)
    kernel = np.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / sigma) ** 2)
    density = kernel @ weights / (sigma * np.sqrt(2 * np.pi))
    return grid, density
