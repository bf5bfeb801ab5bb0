"""A trust-region Newton-CG method: Steihaug-Toint CG inside a radius adapted by the model's success.

Each step minimises the quadratic model ``m(p) = g.p + p.B p / 2`` of the change of the
loss, with B the Gauss-Newton matrix or the Hessian at theta, over the ball ``|p| <= radius`` by
Steihaug-Toint truncated CG (:func:`mininn.linalg.steihaug_cg`), then compares the
actual change of the loss with the model's: the reduction ratio ``rho``. The radius
follows Nocedal & Wright (2006), Algorithm 4.1, with the constants of scipy's
``minimize(method="trust-ncg")``: it shrinks to a quarter when rho < 1/4 and doubles,
up to ``max_radius``, when rho > 3/4 and the step reached the boundary.

Where the damped methods of :mod:`mininn.optim.damping` shape the step with a damping
lambda, a trust region bounds its length; the two are dual (the exact minimiser of the
model in the ball is a damped Newton step ``-(B + lambda I)^{-1} g`` whose lambda is the
multiplier of the constraint), but the radius is the quantity adapted here.
"""

import math
from typing import NamedTuple

import numpy as np

from ..errors import ArgumentError
from ..linalg import steihaug_cg
from ..validation import non_negative, norm, one_of, positive, positive_int
from .base import Optimizer, StepInfo
from .damping import RHO_HIGH, RHO_LOW, decreases, reduction_ratio, trial_loss

CURVATURES = ("ggn", "hessian")

#: Factors of the radius after a poor step (rho < 1/4) and a good step on the boundary (rho > 3/4).
RADIUS_DECREASE, RADIUS_INCREASE = 0.25, 2.0

#: The radius never shrinks below this (the smallest normal float), so that a method stuck at a
#: kink of a ReLU network's loss, where every step is rejected, keeps a valid radius.
MIN_RADIUS = float(np.finfo(float).tiny)

#: The acceptance threshold eta must lie in [0, MAX_ETA) (Nocedal & Wright, Algorithm 4.1).
MAX_ETA = RHO_LOW


class TrustRegionState(NamedTuple):
    step: int
    #: the trust radius of the next step
    radius: float


class TrustRegion(Optimizer):
    """Trust-region Newton-CG (Steihaug 1983; Nocedal & Wright 2006, Algorithms 4.1 and 7.2).

    A step computes the gradient g, minimises the model ``g.p + p.B p / 2`` over
    ``|p| <= radius`` by Steihaug-Toint CG (with the problem's cached curvature operator),
    evaluates the loss at ``theta + p`` and forms ``rho = (L(theta + p) - L(theta)) / m(p)``.
    The step is accepted when ``rho > eta``, that is when
    ``L(theta + p) < L(theta) + eta * m(p)`` (:func:`~mininn.optim.damping.decreases`
    with a required decrease ``eta * m(p)``): the trust-region form of a sufficient
    decrease, relative to the model's prediction. With ``eta = 0`` it is the strict
    decrease the damped methods ask for. The radius then becomes ``radius / 4`` if
    rho < 1/4 (also when rho is NaN: a non-finite trial loss, or a model predicting no
    decrease; never below ``MIN_RADIUS``), ``min(2 radius, max_radius)`` if rho > 3/4
    and ``|p| = radius``, and stays otherwise. A zero gradient gives a zero step,
    rejected with the radius kept.

    On a ReLU network the iterates can converge to a kink of the loss, where a
    pre-activation of some example crosses 0 and the gradient on one side does not
    predict the change on the other: every step is then rejected and the radius
    shrinks towards ``MIN_RADIUS`` while the gradient norm stays finite.

    Configured with the same ``initial_radius``, ``max_radius`` and ``eta`` and the
    default ``cg_tol``, the method takes the steps of ``scipy.optimize.minimize(...,
    method="trust-ncg", hessp=...)`` with B's product as ``hessp``: one scipy iteration
    per step, rejected steps included (scipy stops when the gradient norm falls below
    its ``gtol``; this method does not stop). The iterates agree to rounding, amplified
    as the trajectory amplifies any rounding-size perturbation: on a ReLU network,
    steps across kinks, nearly singular curvature and decisions near the thresholds
    can amplify it by many orders of magnitude, for scipy's own iterates as well.

    Parameters
    ----------
    curvature : str
        "ggn" (the Gauss-Newton matrix, positive semi-definite) or "hessian" (may be
        indefinite: CG then follows a direction of negative curvature to the boundary).
    initial_radius : float
        Radius of the first step, ``0 < initial_radius < max_radius``.
    max_radius : float
        Largest radius.
    eta : float
        Acceptance threshold on rho, in [0, 1/4).
    cg_tol : float or None
        CG stops inside the region when the residual is below ``cg_tol * |g|``; None uses
        scipy's (and Nocedal & Wright's) ``min(0.5, sqrt(|g|))``, which tightens as the
        gradient vanishes (superlinear convergence near a minimum).
    cg_max_iters : int
        Most CG iterations (curvature products) per step.

    Notes
    -----
    ``info.step_size`` is 1 (0 when rejected), ``info.damping`` NaN (the step is bounded
    by the radius, not damped), ``info.rho`` as measured (NaN when the trial loss is not
    finite or the model predicts no decrease). ``info`` adds ``radius`` (the radius of
    this step), ``cg_iterations``, ``cg_reason`` (see
    :class:`~mininn.linalg.SteihaugResult`), ``hits_boundary`` and ``predicted_change``
    (``m(p)``). ``state.radius`` is the radius of the next step. Each step costs one
    gradient, one loss evaluation and ``cg_iterations`` curvature products.
    """

    divergence_hint = "lower max_radius"

    def __init__(self, curvature="ggn", initial_radius=1.0, max_radius=1000.0, eta=0.15, cg_tol=None,
                 cg_max_iters=250):
        self.curvature = one_of("curvature", curvature, CURVATURES)
        self.initial_radius = positive("initial_radius", initial_radius)
        self.max_radius = positive("max_radius", max_radius)
        if not self.initial_radius < self.max_radius:
            raise ArgumentError(f"initial_radius must be below max_radius, got {self.initial_radius} "
                                f">= {self.max_radius}; lower initial_radius or raise max_radius")
        self.eta = non_negative("eta", eta)
        if not self.eta < MAX_ETA:
            raise ArgumentError(f"eta must be in [0, {MAX_ETA}), got {eta!r}: with a larger threshold a "
                                "step with rho between 1/4 and eta is rejected and the radius kept, so "
                                "every later step repeats it")
        self.cg_tol = None if cg_tol is None else positive("cg_tol", cg_tol)
        self.cg_max_iters = positive_int("cg_max_iters", cg_max_iters)

    def init(self, theta):
        """The state before the first step: ``TrustRegionState(step=0, radius=initial_radius)``."""
        return TrustRegionState(0, self.initial_radius)

    def _step(self, problem, theta, state):
        loss, gradient = problem.value_and_grad(theta)
        grad_norm = norm(gradient)
        product = problem.ggn_operator(theta) if self.curvature == "ggn" else problem.hvp_operator(theta)
        tol = min(0.5, math.sqrt(grad_norm)) if self.cg_tol is None else self.cg_tol
        result = steihaug_cg(product, gradient, state.radius, tol, self.cg_max_iters)
        predicted = result.model_change
        trial = theta + result.step
        loss_after = trial_loss(problem.value, trial)
        rho = reduction_ratio(loss, loss_after, predicted)
        accepted = predicted < 0 and decreases(loss, loss_after, self.eta * predicted)
        radius = self._next_radius(state.radius, rho, result.hits_boundary) if grad_norm else state.radius
        info = StepInfo(
            loss=loss, grad_norm=grad_norm, loss_after=loss_after if accepted else loss, accepted=accepted,
            step_size=1.0 if accepted else 0.0, rho=rho,
            extras={"radius": state.radius, "cg_iterations": result.iterations, "cg_reason": result.reason,
                    "hits_boundary": result.hits_boundary, "predicted_change": predicted})
        return (trial if accepted else theta), state._replace(radius=radius), info

    def _next_radius(self, radius, rho, hits_boundary):
        """Nocedal & Wright's Algorithm 4.1 with scipy's constants; a NaN rho counts as poor."""
        if not rho >= RHO_LOW:
            return max(RADIUS_DECREASE * radius, MIN_RADIUS)
        if rho > RHO_HIGH and hits_boundary:
            return min(RADIUS_INCREASE * radius, self.max_radius)
        return radius
