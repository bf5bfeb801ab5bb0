"""Natural-gradient descent with the dense Fisher matrix, for small networks (Amari 1998).

For the losses of :mod:`mininn.losses` (negative log-likelihoods whose natural parameters
are the network outputs) the Fisher information of the model's predictive distribution
equals the Gauss-Newton matrix G, so the natural-gradient step
``-learning_rate (F + damping I)^{-1} g`` is formed from ``problem.ggn(theta)``
(which includes the L2 term ``l2 I``). Its first-order change of the network's function
does not depend on how the parameters are written (as damping and the learning rate
vanish): reparametrise a layer invertibly and the step moves the outputs the same way,
which a gradient step does not.
"""

import numpy as np

from ..curvature import symmetric_eigh
from ..validation import norm, positive
from .base import Optimizer, StepInfo
from .damping import decreases, reduction_ratio, trial_loss


class NaturalGradient(Optimizer):
    """Natural gradient: ``theta <- theta - learning_rate (F + damping I)^{-1} g`` with the dense Fisher F.

    F is the Gauss-Newton matrix ``problem.ggn(theta)`` (the Fisher for these losses,
    including ``l2 I``), eigendecomposed; its eigenvalues, non-negative up to rounding,
    are clipped at 0 before the damping is added, so the system is positive definite.
    The step is taken only if it lowers the loss on the step's problem
    (:func:`~mininn.optim.damping.decreases`); otherwise theta is kept. Learning rate and
    damping stay fixed, as in Amari's natural-gradient descent; :class:`~mininn.optim.newton.GaussNewton` is
    the same direction with the damping adapted by the Levenberg-Marquardt rule. The
    dense matrix limits it to small networks (``problem.ggn`` refuses N above
    ``problem.dense_limit``).

    Parameters
    ----------
    learning_rate : float
        The multiple of the natural-gradient direction taken, > 0.
    damping : float
        lambda added to F's eigenvalues, > 0 (F is singular for most networks: a ReLU
        unit's incoming and outgoing weights can be rescaled without changing the function).

    Notes
    -----
    ``info.step_size`` is the learning rate (0 when rejected), ``info.damping`` lambda,
    ``info.rho`` the reduction ratio against the model ``g.s + s.F.s / 2`` of the step s.
    ``info["min_eigenvalue"]`` is F's smallest eigenvalue (before clipping). Each step
    costs one gradient, N Gauss-Newton products (the dense matrix) and one loss evaluation.
    """

    divergence_hint = "lower the learning rate or raise the damping"

    def __init__(self, learning_rate=1.0, damping=1e-4):
        self.learning_rate = positive("learning_rate", learning_rate)
        self.damping = positive("damping", damping)

    def _step(self, problem, theta, state):
        loss, gradient = problem.value_and_grad(theta)
        eigenvalues, eigenvectors = symmetric_eigh(problem.ggn(theta), "Fisher (Gauss-Newton) matrix")
        curvature = np.clip(eigenvalues, 0.0, None)
        coordinates = -self.learning_rate * (eigenvectors.T @ gradient) / (curvature + self.damping)
        step = eigenvectors @ coordinates
        predicted = gradient @ step + 0.5 * curvature @ coordinates**2
        trial = theta + step
        loss_after = trial_loss(problem.value, trial)
        accepted = decreases(loss, loss_after)
        info = StepInfo(
            loss=loss, grad_norm=norm(gradient), loss_after=loss_after if accepted else loss,
            accepted=accepted, step_size=self.learning_rate if accepted else 0.0, damping=self.damping,
            rho=reduction_ratio(loss, loss_after, predicted),
            extras={"min_eigenvalue": float(eigenvalues[0])})
        return (trial if accepted else theta), state, info
