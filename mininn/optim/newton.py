"""Newton's method with the dense Hessian, and three repairs for non-convex losses.

``Newton`` solves ``H d = -g`` as it is and fails loudly where that is
meaningless: it raises :class:`~mininn.errors.CurvatureError` when H is singular
and reports when H is indefinite (the step may then go uphill or towards a
saddle). The repairs replace H by a positive definite curvature ``C + lambda I``
and adapt the damping lambda with the Levenberg-Marquardt rule of
``LevenbergMarquardt``:

- ``DampedNewton``: ``C = H`` (lambda is raised until ``H + lambda I`` is positive definite);
- ``SaddleFreeNewton``: ``C = |H|``, the Hessian with its eigenvalues replaced by their
  absolute values (Dauphin et al. 2014);
- ``GaussNewton``: ``C = G``, the positive semi-definite Gauss-Newton matrix.

All of them form dense N x N matrices and eigendecompose them: they are for
small networks and for teaching; Hessian-free optimisation is the matrix-free version.
"""

import numpy as np

from ..errors import CurvatureError, NonFiniteError
from .base import (
    DAMPING_INCREASE,
    Optimizer,
    check_finite_update,
    levenberg_marquardt,
    positive,
    trial_loss,
)

FIXES = ("use DampedNewton (adds damping lambda * I), SaddleFreeNewton (uses |H| + lambda * I) "
         "or GaussNewton (uses the positive semi-definite Gauss-Newton matrix, damped)")


def singular_tolerance(eigenvalues):
    """Eigenvalues of absolute value at most this count as zero: ``N * eps * max |eigenvalue|``.

    This is the default tolerance of ``numpy.linalg.matrix_rank``.
    """
    return len(eigenvalues) * np.finfo(float).eps * np.max(np.abs(eigenvalues))


def symmetric_eigh(matrix, name):
    """Eigenvalues (ascending) and eigenvectors of the symmetric part of a finite matrix."""
    if not np.all(np.isfinite(matrix)):
        raise NonFiniteError(f"the {name} contains NaN or infinity; restart from finite parameters")
    return np.linalg.eigh(0.5 * (matrix + matrix.T))


def _check_nonsingular(hessian, eigenvalues):
    zero_rows = int(np.sum(~hessian.any(axis=1)))
    if zero_rows:
        raise CurvatureError(
            f"the Hessian is singular: {zero_rows} of its {len(hessian)} rows are exactly zero "
            "(parameters the loss does not depend on here: weights of dead ReLU units or unused "
            f"weights), so H d = -g has no unique solution; {FIXES}")
    smallest, tolerance = np.min(np.abs(eigenvalues)), singular_tolerance(eigenvalues)
    if smallest <= tolerance:
        raise CurvatureError(
            f"the Hessian is singular to working precision: its smallest |eigenvalue| "
            f"{smallest:.3g} is below N * eps * max |eigenvalue| = {tolerance:.3g} "
            f"(a flat direction, e.g. redundant parameters); {FIXES}")


class Newton(Optimizer):
    """Pure Newton: ``theta <- theta - H^{-1} g`` with the dense Hessian, no safeguard.

    The step is taken even when H is indefinite, so it may increase the loss or
    head for a saddle point; ``info`` shows it: ``indefinite``,
    ``num_negative_eigenvalues``, ``min_eigenvalue``, ``max_eigenvalue`` and
    ``loss_after`` (the loss at the new theta, one extra evaluation).

    Raises
    ------
    mininn.errors.CurvatureError
        If H is singular: a row exactly zero, or an eigenvalue of absolute value
        at most ``N * eps * max |eigenvalue|`` (the ``numpy.linalg.matrix_rank`` tolerance).
    mininn.errors.NonFiniteError
        If the Hessian, the step or the new loss is not finite.
    """

    def step(self, problem, theta, state):
        loss, gradient = problem.value_and_grad(theta)
        hessian = problem.hessian(theta)
        eigenvalues, eigenvectors = symmetric_eigh(hessian, "Hessian")
        _check_nonsingular(hessian, eigenvalues)
        direction = -eigenvectors @ ((eigenvectors.T @ gradient) / eigenvalues)
        new = check_finite_update(theta, theta + direction, FIXES)
        loss_after = problem.value(new)
        if not np.isfinite(loss_after):
            raise NonFiniteError(f"the Newton step leads to a non-finite loss; {FIXES}")
        num_negative = int(np.sum(eigenvalues < 0))
        info = {
            "loss": loss,
            "grad_norm": float(np.linalg.norm(gradient)),
            "loss_after": loss_after,
            "min_eigenvalue": float(eigenvalues[0]),
            "max_eigenvalue": float(eigenvalues[-1]),
            "indefinite": num_negative > 0,
            "num_negative_eigenvalues": num_negative,
        }
        return new, {"step": state["step"] + 1}, info


class LevenbergMarquardt(Optimizer):
    """Base of the damped methods: ``d = -(C + lambda I)^{-1} g``, lambda adapted by the LM rule.

    A subclass defines :meth:`curvature`, the eigendecomposition of its curvature
    matrix C. A step tries ``theta + d``; it is accepted only if the loss
    decreases. The reduction ratio ``rho = (L(theta + d) - L(theta)) / m(d)``
    compares the actual change with the change ``m(d) = g.d + d.C.d / 2``
    predicted by the undamped quadratic model; after an accepted step lambda is
    multiplied by 3/2 if rho < 1/4 and by 2/3 if rho > 3/4 (Martens 2010). A
    rejected step (loss not lower, or not finite) multiplies lambda by 3/2 and
    is retried, reusing the eigendecomposition, up to ``max_retries`` times;
    if all attempts fail, theta is kept. Before each attempt, lambda is multiplied
    by 3/2 until ``C + lambda I`` is positive definite (this costs no evaluation;
    only an indefinite C needs it). lambda stays in ``[min_damping, max_damping]``.

    Parameters
    ----------
    damping : float
        Initial lambda.
    min_damping, max_damping : float
        Bounds on lambda.
    max_retries : int
        Extra attempts, each costing one loss evaluation, after a rejected step.

    Notes
    -----
    ``info`` holds ``loss``, ``grad_norm``, ``damping`` (the lambda of the last
    attempt), ``rho``, ``accepted``, ``loss_after`` (the loss at the returned
    theta) and ``attempts``; ``state['damping']`` is the lambda for the next step.
    """

    def __init__(self, damping=1.0, min_damping=1e-8, max_damping=1e8, max_retries=10):
        self.damping = positive("damping", damping)
        self.min_damping = positive("min_damping", min_damping)
        self.max_damping = positive("max_damping", max_damping)
        if not self.min_damping <= self.damping <= self.max_damping:
            raise ValueError(f"need min_damping <= damping <= max_damping, got {self.min_damping}, "
                             f"{self.damping}, {self.max_damping}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.max_retries = int(max_retries)

    def init(self, theta):
        return {"step": 0, "damping": self.damping}

    def curvature(self, problem, theta):
        """Eigenvalues and eigenvectors (columns) of the model curvature C at theta."""
        raise NotImplementedError

    def step(self, problem, theta, state):
        loss, gradient = problem.value_and_grad(theta)
        eigenvalues, eigenvectors = self.curvature(problem, theta)
        new, damping, info = self.damped_step(
            problem.value, theta, loss, gradient, eigenvalues, eigenvectors, state["damping"])
        info = {"loss": loss, "grad_norm": float(np.linalg.norm(gradient)), **info}
        return new, {"step": state["step"] + 1, "damping": damping}, info

    def damped_step(self, value, theta, loss, gradient, eigenvalues, eigenvectors, damping):
        """Try damped steps from theta until one lowers the loss; return (theta, damping, info).

        Parameters
        ----------
        value : callable
            The loss, a function of a parameter vector returning a float.
        theta : ndarray of shape (N,)
            Current parameters, with loss ``loss`` and gradient ``gradient``.
        loss : float
            The loss at theta.
        gradient : ndarray of shape (N,)
            The gradient at theta.
        eigenvalues : ndarray of shape (N,)
            Eigenvalues of the curvature C.
        eigenvectors : ndarray of shape (N, N)
            The matching orthonormal eigenvectors, one per column.
        damping : float
            lambda for the first attempt.
        """
        coordinates = eigenvectors.T @ gradient
        info = {"damping": damping, "rho": np.nan, "attempts": 0}
        for attempt in range(1, self.max_retries + 2):
            damping = self._positive_definite_damping(eigenvalues, damping)
            shifted = eigenvalues + damping
            if shifted.min() <= singular_tolerance(shifted):
                info["damping"] = damping
                break  # not positive definite even at max_damping
            step = -coordinates / shifted
            predicted = coordinates @ step + 0.5 * eigenvalues @ step**2
            trial = theta + eigenvectors @ step
            loss_after = trial_loss(value, trial)
            rho = (loss_after - loss) / predicted if predicted < 0 else np.nan
            info = {"damping": damping, "rho": rho, "attempts": attempt}
            if loss_after < loss:
                damping = levenberg_marquardt(damping, rho, self.bounds)
                return trial, damping, {**info, "accepted": True, "loss_after": loss_after}
            damping = levenberg_marquardt(damping, np.nan, self.bounds)
        return theta, damping, {**info, "accepted": False, "loss_after": loss}

    @property
    def bounds(self):
        return (self.min_damping, self.max_damping)

    def _positive_definite_damping(self, eigenvalues, damping):
        """Multiply damping by 3/2 until C + damping I is positive definite (or at max_damping)."""
        shifted = eigenvalues + damping
        while shifted.min() <= singular_tolerance(shifted) and damping < self.max_damping:
            damping = min(damping * DAMPING_INCREASE, self.max_damping)
            shifted = eigenvalues + damping
        return damping


class DampedNewton(LevenbergMarquardt):
    """Levenberg-Marquardt damped Newton: ``(H + lambda I) d = -g`` with the dense Hessian H.

    rho is measured against the undamped Newton model ``g.d + d.H.d / 2``;
    lambda is first raised (by factors 3/2, without evaluations) until
    ``H + lambda I`` is positive definite. See ``LevenbergMarquardt``.
    """

    def curvature(self, problem, theta):
        return symmetric_eigh(problem.hessian(theta), "Hessian")


class SaddleFreeNewton(LevenbergMarquardt):
    """Saddle-free Newton (Dauphin et al. 2014): ``(|H| + lambda I) d = -g``.

    ``|H| = V |Lambda| V^T`` from the eigendecomposition ``H = V Lambda V^T``:
    directions of negative curvature are followed downhill instead of towards
    the saddle. rho is measured against the model ``g.d + d.|H|.d / 2``
    (the model the step minimises, not the true second-order Taylor model).
    See ``LevenbergMarquardt``.
    """

    def __init__(self, damping=1e-3, min_damping=1e-8, max_damping=1e8, max_retries=10):
        super().__init__(damping, min_damping, max_damping, max_retries)

    def curvature(self, problem, theta):
        eigenvalues, eigenvectors = symmetric_eigh(problem.hessian(theta), "Hessian")
        return np.abs(eigenvalues), eigenvectors


class GaussNewton(LevenbergMarquardt):
    """Damped Gauss-Newton: ``(G + lambda I) d = -g`` with the dense Gauss-Newton matrix G.

    G is positive semi-definite, so only the damping makes it invertible (dead
    ReLU units give zero rows). rho is measured against the Gauss-Newton model
    ``g.d + d.G.d / 2``. See ``LevenbergMarquardt``.
    """

    def __init__(self, damping=1e-3, min_damping=1e-8, max_damping=1e8, max_retries=10):
        super().__init__(damping, min_damping, max_damping, max_retries)

    def curvature(self, problem, theta):
        return symmetric_eigh(problem.ggn(theta), "Gauss-Newton matrix")
