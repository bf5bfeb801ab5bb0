"""Newton's method with the dense Hessian, and three repairs for non-convex losses.

``Newton`` solves ``H d = -g`` as it is and fails loudly where that is
meaningless: it raises :class:`~mininn.errors.CurvatureError` when H is singular
and reports when H is indefinite (the step may then go uphill or towards a
saddle). The repairs replace H by a positive definite curvature ``C + lambda I``
and adapt the damping lambda with the reduction-ratio rule of Martens (2010), in the
base class ``LevenbergMarquardt`` (named after the damping of Gauss-Newton on least
squares, the original Levenberg-Marquardt method):

- ``DampedNewton``: ``C = H``, a Hessian modification (Nocedal & Wright 2006, section 3.4):
  lambda is raised until ``H + lambda I`` is positive definite;
- ``SaddleFreeNewton``: ``C = |H|``, the Hessian with its eigenvalues replaced by their
  absolute values (Dauphin et al. 2014);
- ``GaussNewton``: ``C = G``, the positive semi-definite Gauss-Newton matrix.

All of them form dense N x N matrices and eigendecompose them: they are for
small networks and for teaching; Hessian-free optimisation is the matrix-free version.
"""

from typing import NamedTuple

import numpy as np

from ..curvature import singular_tolerance, symmetric_eigh
from ..errors import ArgumentError, CurvatureError, NonFiniteError
from ..validation import integer, norm, positive
from .base import Optimizer, StepInfo
from .damping import DAMPING_INCREASE, decreases, levenberg_marquardt, reduction_ratio, trial_loss

FIXES = ("use DampedNewton (adds damping lambda * I), SaddleFreeNewton (uses |H| + lambda * I) "
         "or GaussNewton (uses the positive semi-definite Gauss-Newton matrix, damped)")


class DampedState(NamedTuple):
    step: int
    damping: float


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

    divergence_hint = FIXES

    def _step(self, problem, theta, state):
        loss, gradient = problem.value_and_grad(theta)
        hessian = problem.hessian(theta)
        eigenvalues, eigenvectors = symmetric_eigh(hessian, "Hessian")
        _check_nonsingular(hessian, eigenvalues)
        with np.errstate(over="ignore", invalid="ignore"):
            new = theta - eigenvectors @ ((eigenvectors.T @ gradient) / eigenvalues)
        loss_after = trial_loss(problem.value, new)
        if not np.isfinite(loss_after):
            raise NonFiniteError(f"the Newton step leads to a non-finite loss; {FIXES}")
        num_negative = int(np.sum(eigenvalues < 0))
        extras = {
            "min_eigenvalue": float(eigenvalues[0]),
            "max_eigenvalue": float(eigenvalues[-1]),
            "indefinite": num_negative > 0,
            "num_negative_eigenvalues": num_negative,
        }
        info = StepInfo(loss=loss, grad_norm=norm(gradient), loss_after=loss_after, step_size=1.0,
                        extras=extras)
        return new, state, info


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
    ``info.damping`` is the lambda of the last attempt, ``info.loss_after`` the loss at
    the returned theta, ``info.step_size`` 1 (0 when every attempt was rejected);
    ``info["attempts"]`` counts the loss evaluations. ``state.damping`` is the lambda
    for the next step.
    """

    divergence_hint = FIXES

    def __init__(self, damping=1.0, min_damping=1e-8, max_damping=1e8, max_retries=10):
        self.damping = positive("damping", damping)
        self.min_damping = positive("min_damping", min_damping)
        self.max_damping = positive("max_damping", max_damping)
        if not self.min_damping <= self.damping <= self.max_damping:
            raise ArgumentError(f"need min_damping <= damping <= max_damping, got {self.min_damping}, "
                                f"{self.damping}, {self.max_damping}")
        self.max_retries = integer("max_retries", max_retries, 0)

    def init(self, theta):
        return DampedState(0, self.damping)

    def curvature(self, problem, theta):
        """Eigenvalues and eigenvectors (columns) of the model curvature C at theta."""
        raise NotImplementedError

    def _step(self, problem, theta, state):
        loss, gradient = problem.value_and_grad(theta)
        eigenvalues, eigenvectors = self.curvature(problem, theta)
        new, damping, info = self.damped_step(
            problem.value, theta, loss, gradient, eigenvalues, eigenvectors, state.damping)
        return new, state._replace(damping=damping), info

    def damped_step(self, value, theta, loss, gradient, eigenvalues, eigenvectors, damping):
        """Try damped steps from theta until one lowers the loss.

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

        Returns
        -------
        theta : ndarray of shape (N,)
            The accepted trial point, or theta itself if every attempt was rejected.
        damping : float
            lambda for the next step.
        info : StepInfo
        """
        coordinates = eigenvectors.T @ gradient
        tried, rho, attempts = damping, np.nan, 0
        for attempt in range(1, self.max_retries + 2):
            damping = tried = self._positive_definite_damping(eigenvalues, damping)
            shifted = eigenvalues + damping
            if shifted.min() <= singular_tolerance(shifted):
                break  # not positive definite even at max_damping
            step = -coordinates / shifted
            predicted = coordinates @ step + 0.5 * eigenvalues @ step**2
            trial = theta + eigenvectors @ step
            loss_after = trial_loss(value, trial)
            rho, attempts = reduction_ratio(loss, loss_after, predicted), attempt
            if decreases(loss, loss_after):
                info = self._info(loss, gradient, loss_after, True, tried, rho, attempts)
                return trial, levenberg_marquardt(damping, rho, self.bounds), info
            damping = levenberg_marquardt(damping, np.nan, self.bounds)
        return theta, damping, self._info(loss, gradient, loss, False, tried, rho, attempts)

    @staticmethod
    def _info(loss, gradient, loss_after, accepted, damping, rho, attempts):
        return StepInfo(loss=loss, grad_norm=norm(gradient), loss_after=loss_after, accepted=accepted,
                        step_size=1.0 if accepted else 0.0, damping=damping, rho=rho,
                        extras={"attempts": attempts})

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
    """Damped Newton, a Hessian modification: ``(H + lambda I) d = -g`` with the dense Hessian H.

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
    """Damped Gauss-Newton (Levenberg-Marquardt): ``(G + lambda I) d = -g`` with the dense Gauss-Newton G.

    G is positive semi-definite, so only the damping makes it invertible (dead
    ReLU units give zero rows). rho is measured against the Gauss-Newton model
    ``g.d + d.G.d / 2``. See ``LevenbergMarquardt``.
    """

    def __init__(self, damping=1e-3, min_damping=1e-8, max_damping=1e8, max_retries=10):
        super().__init__(damping, min_damping, max_damping, max_retries)

    def curvature(self, problem, theta):
        return symmetric_eigh(problem.ggn(theta), "Gauss-Newton matrix")
