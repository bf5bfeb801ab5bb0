"""Shampoo (Gupta, Koren & Singer 2018): Kronecker-factored Adagrad, with Adam grafting (Anil et al. 2020).

Each layer's gradient, reshaped to ``G`` of shape (fan_in + 1, fan_out) in the
homogeneous layout of K-FAC (W, then b as the last row), gets a left factor
``L = Σ_s G_s G_sᵀ`` and a right factor ``R = Σ_s G_sᵀ G_s`` (sums over the steps
so far, or exponential moving averages), and the update
``-learning_rate L^(-1/4) G R^(-1/4)``. Where K-FAC's factors are the
curvature's (input second moments and sampled output gradients), Shampoo's are
the gradients' own second moments, as Adagrad's diagonal is.
"""

from typing import NamedTuple

import numpy as np

from ..curvature import psd_eigh
from ..curvature.mlp import check_mlp
from ..validation import in_unit_interval, norm, one_of, positive, positive_int
from .base import StepInfo
from .first_order import FirstOrder

#: The grafting choices: None (the Shampoo step as it is) or "adam" (its norm per layer).
GRAFTS = (None, "adam")

#: The exponent of each factor's inverse root for a matrix (two-sided) parameter.
ROOT = -0.25


class ShampooState(NamedTuple):
    step: int
    #: per layer, the accumulated (or averaged) statistics (L, R); None before the first step
    factors: list | None
    #: per layer, the inverse roots ((L + eps I)^(-1/4), (R + eps I)^(-1/4)) in use
    roots: list | None
    #: the (not bias-corrected) moving average of the gradient, beta1
    first_moment: np.ndarray
    #: Adam's moving average of the squared gradient, for grafting (zero without it)
    second_moment: np.ndarray


def inverse_root(matrix, eps, exponent=ROOT):
    """``(matrix + eps I)^exponent`` of a symmetric positive semidefinite matrix, by eigh.

    Negative eigenvalues from rounding are clipped to 0 before eps is added.
    """
    eigenvalues, vectors = psd_eigh(matrix)
    return (vectors * (eigenvalues + eps) ** exponent) @ vectors.T


class Shampoo(FirstOrder):
    """Shampoo: each layer's (filtered) gradient G preconditioned as ``L^(-1/4) G R^(-1/4)``.

    At step t (counted from 1), with g the gradient and, per layer, G its block of
    shape (fan_in + 1, fan_out):

    - statistics ``L <- L + G Gᵀ``, ``R <- R + Gᵀ G`` (``beta2=None``, Gupta et
      al.), or ``L <- β₂ L + (1 - β₂) G Gᵀ`` and the same for R, bias-corrected by
      ``1 - β₂^t`` before the roots are taken;
    - every ``inverse_every`` steps (from step 1) the inverse roots
      ``(L + eps I)^(-1/4)`` and ``(R + eps I)^(-1/4)``, by eigendecomposition;
      eps is added to each factor here, just before the root (Gupta et al. start
      the sums at ``eps I``, which is the same thing for sums);
    - the filtered gradient ``m = β₁ m + (1 - β₁) g``, bias-corrected
      ``m̂ = m / (1 - β₁^t)`` (``m̂ = g`` when β₁ = 0), and the Shampoo direction
      ``P = L^(-1/4) M̂ R^(-1/4)`` per layer;
    - with ``graft="adam"``, each layer's P is rescaled to the norm of Adam's
      direction ``m̂ / (sqrt(v̂) + graft_eps)`` for that layer, with
      ``v = graft_beta2 v + (1 - graft_beta2) g²`` bias-corrected (layer-wise
      grafting, Anil et al. 2020; as in Meta's distributed Shampoo, both
      precondition the same filtered gradient);
    - ``theta <- theta - learning_rate P``.

    Parameters
    ----------
    learning_rate : float
        The step size.
    beta1 : float
        Decay of the gradient's moving average in [0, 1); 0 uses the gradient itself.
    beta2 : float or None
        None sums the statistics (Shampoo as published); a decay in [0, 1)
        averages them exponentially.
    eps : float
        Added to each factor's eigenvalues before the inverse root.
    inverse_every : int
        Steps between recomputations of the inverse roots (stale roots in between).
    graft : None or "adam"
        Rescale each layer's step to the norm of Adam's.
    graft_beta2, graft_eps : float
        Adam's second-moment decay and epsilon, for grafting.

    Notes
    -----
    ``info.step_size`` is the learning rate and ``loss_after`` is not evaluated
    (NaN), as for the first-order methods. Each step counts one gradient. The
    inverse roots cost one eigendecomposition per factor, O((fan_in + 1)^3 +
    fan_out^3) per layer, every ``inverse_every`` steps; the statistics cost
    O(fan_in fan_out (fan_in + fan_out)) per layer and step, independent of the
    batch. For a layer with one output, R is the scalar ``Σ|G_s|² = tr L`` and the
    step reduces to full-matrix Adagrad with exponent -1/4,
    ``-lr (L + eps I)^(-1/4) g / (tr L + eps)^(1/4)``.

    Between recomputations the roots are stale. Early statistics are
    rank-deficient (after t steps a layer's L has rank at most t fan_out), and the
    part of a new gradient outside their range is multiplied by about
    ``eps^(-1/4)`` (1e3 at eps = 1e-12): grafting bounds the layer's step norm but
    not this tilt of its direction. ``inverse_every=1`` avoids it, at one
    eigendecomposition per factor and step; a larger eps reduces it.

    Deviations from the distributed implementations (Anil et al. 2020; Shi et al.
    2023): no blocking of large factors, no start-up phase on the grafted method,
    no diagonal fallback for very large dimensions, and the roots by ``eigh``
    rather than coupled Newton iterations; grafting uses Adam's norm but not its
    direction, and the learning rate multiplies both.
    """

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=None, eps=1e-12, inverse_every=10,
                 graft="adam", graft_beta2=0.999, graft_eps=1e-8):
        super().__init__(learning_rate)
        self.beta1 = in_unit_interval("beta1", beta1)
        self.beta2 = None if beta2 is None else in_unit_interval("beta2", beta2)
        self.eps = positive("eps", eps)
        self.inverse_every = positive_int("inverse_every", inverse_every)
        self.graft = one_of("graft", graft, GRAFTS)
        self.graft_beta2 = in_unit_interval("graft_beta2", graft_beta2)
        self.graft_eps = positive("graft_eps", graft_eps)

    def init(self, theta):
        zeros = np.zeros_like(theta, dtype=float)
        return ShampooState(0, None, None, zeros, zeros.copy())

    def _step(self, problem, theta, state):
        # Overrides FirstOrder._step only to hand the rule the model's layers.
        check_mlp(problem.model, "Shampoo")
        loss, g = problem.value_and_grad(theta)
        with np.errstate(over="ignore", invalid="ignore"):
            update, state = self.rule(g, state, problem.model.layout)
            new = theta + update
        return new, state, StepInfo(loss=loss, grad_norm=norm(g), step_size=self.learning_rate)

    def rule(self, g, state, layout):
        """The update (shape (N,)) and the new state, from the gradient g and the model's layout."""
        t = state.step + 1
        blocks = [g[layer.params].reshape(layer.fan_in + 1, layer.fan_out) for layer in layout]
        factors = self._statistics(blocks, state.factors)
        roots = state.roots
        if state.step % self.inverse_every == 0:
            correction = 1.0 if self.beta2 is None else 1 - self.beta2**t
            roots = [(inverse_root(L / correction, self.eps), inverse_root(R / correction, self.eps))
                     for L, R in factors]
        first = self.beta1 * state.first_moment + (1 - self.beta1) * g
        filtered = first / (1 - self.beta1**t)
        second = state.second_moment
        if self.graft == "adam":
            second = self.graft_beta2 * second + (1 - self.graft_beta2) * g**2
            adam = filtered / (np.sqrt(second / (1 - self.graft_beta2**t)) + self.graft_eps)
        update = np.empty_like(g)
        for layer, (left, right) in zip(layout, roots):
            block = filtered[layer.params].reshape(layer.fan_in + 1, layer.fan_out)
            direction = (left @ block @ right).ravel()
            if self.graft == "adam":
                size = norm(direction)
                direction = direction * (norm(adam[layer.params]) / size) if size > 0 else direction
            update[layer.params] = -self.learning_rate * direction
        return update, state._replace(factors=factors, roots=roots, first_moment=first,
                                      second_moment=second)

    def _statistics(self, blocks, previous):
        """The new (L, R) per layer: sums, or moving averages (not bias-corrected) with beta2."""
        keep, weight = (1.0, 1.0) if self.beta2 is None else (self.beta2, 1 - self.beta2)
        previous = previous or [(0.0, 0.0)] * len(blocks)
        return [(keep * L + weight * (G @ G.T), keep * R + weight * (G.T @ G))
                for (L, R), G in zip(previous, blocks)]
