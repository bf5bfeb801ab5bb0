"""K-FAC, the optimizer (Martens & Grosse 2015): the gradient preconditioned by Kronecker factors.

The factors themselves are curvature: see :mod:`mininn.curvature.kfac`.
"""

from typing import NamedTuple

import numpy as np

from ..curvature import FISHER_KINDS
from ..validation import in_unit_interval, norm, one_of, positive, positive_int, random_seed
from .base import Optimizer, StepInfo
from .damping import decreases, levenberg_marquardt, reduction_ratio, trial_loss


class KFACState(NamedTuple):
    step: int
    #: per layer, the moving averages (A, G); None before the first step
    factors: list | None
    #: per layer, the eigendecompositions ((s_A, Q_A), (s_G, Q_G)) of the averages
    eigen: list | None
    damping: float
    #: the previous update delta, for momentum
    update: np.ndarray


def _eigen(matrix):
    eigenvalues, vectors = np.linalg.eigh(matrix)
    return np.clip(eigenvalues, 0.0, None), vectors


def _precondition_block(gradient_block, eigen_A, eigen_G, gamma):
    """``(A + π√γ I)⁻¹ ∇ (G + √γ/π I)⁻¹`` from the factors' eigendecompositions."""
    (s_A, Q_A), (s_G, Q_G) = eigen_A, eigen_G
    mean_A, mean_G = s_A.mean(), s_G.mean()
    pi = np.sqrt(mean_A / mean_G) if mean_A > 0 and mean_G > 0 else 1.0
    rotated = Q_A.T @ gradient_block @ Q_G
    rotated /= np.outer(s_A + pi * np.sqrt(gamma), s_G + np.sqrt(gamma) / pi)
    return Q_A @ rotated @ Q_G.T


class KFAC(Optimizer):
    """K-FAC: the gradient preconditioned by per-layer Kronecker-factored Gauss-Newton blocks.

    One step on the problem's batch: the factors of ``kfac_factors`` are
    folded into exponential moving averages ``A <- ε A + (1 - ε) A_batch`` with
    ``ε = min(ema_decay, 1 - 1/(t + 1))`` at step t (so early averages are not
    biased towards the empty start); every ``inverse_every`` steps the averages'
    eigendecompositions are recomputed. Each layer's gradient, reshaped to
    ``∇W̄`` of shape (fan_in + 1, fan_out), gives the direction
    ``Δ = -(A + π√γ I)⁻¹ ∇W̄ (G + √γ/π I)⁻¹`` (factored Tikhonov damping,
    Martens & Grosse §6.3) with ``γ = λ + l2`` and
    ``π = sqrt((tr A / dim A) / (tr G / dim G))``. The update is
    ``δ = α Δ + momentum δ_prev`` (plain heavy-ball momentum), with α the
    learning rate or, when it is None, the minimiser of the damped quadratic
    model along Δ (§6.4), ``α* = -gᵀΔ / (ΔᵀFΔ + λ|Δ|²)``, F the Gauss-Newton
    matrix (one ``ggn_vp``). A step that is non-finite or increases the loss
    is rejected: theta is kept and the momentum reset. With ``adapt_damping``
    the Levenberg-Marquardt rule updates λ from
    ``ρ = (L(θ + δ) - L(θ)) / (gᵀδ + δᵀFδ / 2)``: ρ < 1/4 (or a rejected
    step) -> λ·3/2, ρ > 3/4 -> λ·2/3, within ``DAMPING_RANGE``.

    ``info.step_size`` is α (0 for a rejected step), ``info.damping`` the λ used and ``info.rho`` NaN
    without ``adapt_damping`` or for a rejected step. Each step counts one
    ``"kfac_factors"`` in ``problem.counts`` (about one gradient's work for
    "sampled" and "empirical"), besides the usual evaluations.

    Parameters
    ----------
    learning_rate : float or None
        Fixed step size α, or None for α* from the quadratic model.
    damping : float
        Initial Tikhonov damping λ.
    ema_decay : float
        Decay ε of the factors' moving averages, in [0, 1).
    inverse_every : int
        Steps between eigendecompositions of the factors.
    momentum : float
        Heavy-ball coefficient in [0, 1).
    fisher : str
        How G is formed (see ``FISHER_KINDS``).
    seed : int
        Seed of the target sampling (step t uses ``default_rng([seed, t])``).
    adapt_damping : bool
        Whether λ follows the Levenberg-Marquardt rule.
    """

    divergence_hint = "raise the damping"

    def __init__(self, learning_rate=None, damping=1e-2, ema_decay=0.95, inverse_every=10,
                 momentum=0.0, fisher="sampled", seed=0, adapt_damping=True):
        self.learning_rate = None if learning_rate is None else positive("learning_rate", learning_rate)
        self.damping = positive("damping", damping)
        self.ema_decay = in_unit_interval("ema_decay", ema_decay)
        self.inverse_every = positive_int("inverse_every", inverse_every)
        self.momentum = in_unit_interval("momentum", momentum)
        self.fisher = one_of("fisher", fisher, FISHER_KINDS)
        self.seed = random_seed("seed", seed)
        self.adapt_damping = bool(adapt_damping)

    def init(self, theta):
        return KFACState(0, None, None, self.damping, np.zeros_like(theta, dtype=float))

    def _step(self, problem, theta, state):
        loss, g = problem.value_and_grad(theta)
        factors, eigen = self._update_factors(problem, theta, state)
        direction = self._precondition(problem, g, eigen, state.damping)
        alpha, F_direction = self._step_size(problem, theta, g, direction, state.damping)
        delta = alpha * direction + self.momentum * state.update
        reuse = F_direction if self.momentum == 0 else None  # F delta = alpha F direction
        accepted, loss_after, rho, damping = self._accept_and_adapt(
            problem, theta, loss, g, delta, state.damping, alpha, reuse)
        info = StepInfo(loss=loss, grad_norm=norm(g), loss_after=loss_after, accepted=accepted,
                        step_size=alpha if accepted else 0.0, damping=state.damping, rho=rho)
        state = state._replace(factors=factors, eigen=eigen, damping=damping,
                               update=delta if accepted else np.zeros_like(delta))
        return (theta + delta if accepted else theta), state, info

    def _update_factors(self, problem, theta, state):
        """Fold this batch's factors into the moving averages; refresh the eigendecompositions."""
        t = state.step
        batch = problem.kfac_factors(theta, self.fisher, np.random.default_rng([self.seed, t]))
        decay = min(self.ema_decay, 1.0 - 1.0 / (t + 1))
        factors = batch if state.factors is None else [
            (decay * A + (1 - decay) * A_new, decay * G + (1 - decay) * G_new)
            for (A, G), (A_new, G_new) in zip(state.factors, batch)]
        eigen = state.eigen
        if t % self.inverse_every == 0:
            eigen = [(_eigen(A), _eigen(G)) for A, G in factors]
        return factors, eigen

    def _precondition(self, problem, g, eigen, damping):
        """The direction ``Δ``: minus each layer's gradient through its damped Kronecker inverse."""
        direction = np.empty_like(g)
        for layer, (eigen_A, eigen_G) in zip(problem.model.layout, eigen):
            block = g[layer.params].reshape(layer.fan_in + 1, layer.fan_out)
            preconditioned = _precondition_block(block, eigen_A, eigen_G, damping + problem.l2)
            direction[layer.params] = -preconditioned.ravel()
        return direction

    def _step_size(self, problem, theta, g, direction, damping):
        """(α, F Δ): the learning rate, or the damped quadratic model's minimiser along Δ."""
        if self.learning_rate is not None:
            return self.learning_rate, None
        F_direction = problem.ggn_vp(theta, direction)
        denominator = direction @ F_direction + damping * (direction @ direction)
        return (-(g @ direction) / denominator if denominator > 0 else 0.0), F_direction

    def _accept_and_adapt(self, problem, theta, loss, g, delta, damping, alpha, F_direction):
        """(accepted, loss at the returned theta, rho, next λ) for the trial step ``theta + delta``."""
        trial = trial_loss(problem.value, theta + delta)
        accepted = decreases(loss, trial)
        rho = np.nan
        if self.adapt_damping:
            if accepted:
                F_delta = alpha * F_direction if F_direction is not None else problem.ggn_vp(theta, delta)
                rho = reduction_ratio(loss, trial, g @ delta + 0.5 * (delta @ F_delta))
            damping = levenberg_marquardt(damping, rho)
        return accepted, (trial if accepted else loss), rho, damping
