"""K-FAC, the optimizer (Martens & Grosse 2015): the gradient preconditioned by Kronecker factors.

The factors themselves are curvature: see :mod:`mininn.curvature.kfac`.
"""

import warnings
from typing import NamedTuple

import numpy as np

from ..curvature import FISHER_KINDS, psd_eigh
from ..errors import ArgumentError
from ..validation import in_unit_interval, norm, one_of, positive, positive_int, random_seed
from .base import Optimizer, StepInfo
from .damping import DAMPING_RANGE, decreases, levenberg_marquardt, reduction_ratio, trial_loss

#: Martens & Grosse's decay per step of the damping adjustments: over T steps the factored
#: Tikhonov damping gamma moves by GAMMA_DECAY**T (their omega_2 squared, see ``KFAC``).
GAMMA_DECAY = 19 / 20


class SmallBatchWarning(UserWarning):
    """K-FAC was given a batch with fewer examples than one of its Kronecker factors has rows."""


class KFACState(NamedTuple):
    step: int
    #: per layer, the moving averages (A, G); None before the first step
    factors: list | None
    #: per layer, the eigendecompositions ((s_A, Q_A), (s_G, Q_G)) of the averages
    eigen: list | None
    #: the Levenberg-Marquardt damping lambda of the next step
    damping: float
    #: the factored Tikhonov damping gamma of the next step; None when it is tied to lambda + l2
    gamma: float | None
    #: the previous update delta, for momentum (zero after a rejected step)
    update: np.ndarray


def _precondition_block(gradient_block, eigen_A, eigen_G, gamma):
    """``(A + π√γ I)⁻¹ ∇ (G + √γ/π I)⁻¹`` from the factors' eigendecompositions."""
    (s_A, Q_A), (s_G, Q_G) = eigen_A, eigen_G
    mean_A, mean_G = s_A.mean(), s_G.mean()
    pi = np.sqrt(mean_A / mean_G) if mean_A > 0 and mean_G > 0 else 1.0
    rotated = Q_A.T @ gradient_block @ Q_G
    rotated /= np.outer(s_A + pi * np.sqrt(gamma), s_G + np.sqrt(gamma) / pi)
    return Q_A @ rotated @ Q_G.T


def solve_quadratic_model(b, C):
    """Coefficients w minimising ``bᵀw + wᵀCw / 2`` for a 1x1 or 2x2 damped curvature C.

    Parameters
    ----------
    b : ndarray of shape (k,)
        ``Vᵀg``: the gradient's inner products with the k vectors spanning the step.
    C : ndarray of shape (k, k)
        ``Vᵀ(F + λI)V``, symmetric.

    Returns
    -------
    ndarray of shape (k,)
        ``-C⁻¹b``. When C is not positive definite (e.g. the two vectors are
        parallel) only the first vector is used, with ``w = (-b_0 / C_00, 0)``, and
        ``w_0 = 0`` when ``C_00 <= 0`` (the model has no minimum along it).
    """
    w = np.zeros(len(b))
    if len(b) == 2 and C[0, 0] > 0 and np.linalg.det(C) > 1e-12 * C[0, 0] * C[1, 1]:
        return -np.linalg.solve(C, b)
    if C[0, 0] > 0:
        w[0] = -b[0] / C[0, 0]
    return w


class KFAC(Optimizer):
    """K-FAC: the gradient preconditioned by per-layer Kronecker-factored Gauss-Newton blocks.

    One step on the problem's batch: the factors of ``kfac_factors`` are
    folded into exponential moving averages ``A <- ε A + (1 - ε) A_batch`` with
    ``ε = min(ema_decay, 1 - 1/(t + 1))`` at step t (so early averages are not
    biased towards the empty start); every ``inverse_every`` steps (T3) the averages'
    eigendecompositions are recomputed. Each layer's gradient, reshaped to
    ``∇W̄`` of shape (fan_in + 1, fan_out), gives the direction
    ``Δ = -(A + π√γ I)⁻¹ ∇W̄ (G + √γ/π I)⁻¹`` (factored Tikhonov damping,
    Martens & Grosse §6.3) with ``π = sqrt((tr A / dim A) / (tr G / dim G))``
    and γ either tied to the damping, ``γ = λ + l2`` (``gamma=None``), or a
    separate damping of its own (below).

    The update is ``δ = α Δ + μ δ_prev``. With ``momentum="quadratic"`` α and μ
    jointly minimise the damped quadratic model
    ``M(δ) = gᵀδ + δᵀ(F + λI)δ / 2`` over the plane of Δ and the previous update
    (§7), F the Gauss-Newton matrix (with the L2 term): a 2x2 system from two
    ``ggn_vp`` products (one at the first step, or after a rejected step, when
    δ_prev = 0 and the solve reduces to α* below). With a number, μ is that
    fixed heavy-ball coefficient and α is the learning rate or, when it is None,
    the minimiser of M along Δ (§6.4), ``α* = -gᵀΔ / (ΔᵀFΔ + λ|Δ|²)``.

    A step that is non-finite or does not lower the loss is rejected: theta is
    kept, the momentum reset and λ raised. With ``adapt_damping`` the
    Levenberg-Marquardt rule updates λ every ``damping_every`` steps (T1) from
    ``ρ = (L(θ + δ) - L(θ)) / (gᵀδ + δᵀFδ / 2)``: ρ < 1/4 -> λ·3/2,
    ρ > 3/4 -> λ·2/3, within ``DAMPING_RANGE``. With a separate ``gamma``
    and ``adapt_gamma``, every ``gamma_every`` steps (T2) the step is computed
    for each of ``γ``, ``γ ω`` and ``γ / ω``, ``ω = (19/20)^T2``, and the γ whose
    update gives the lowest M(δ) is kept (§6.6).

    Parameters
    ----------
    learning_rate : float or None
        Fixed step size α, or None for α chosen from the quadratic model.
    damping : float
        Initial Levenberg-Marquardt (Tikhonov) damping λ of the quadratic model.
    ema_decay : float
        Decay ε of the factors' moving averages, in [0, 1).
    inverse_every : int
        Steps between eigendecompositions of the factors (T3).
    momentum : float or "quadratic"
        Heavy-ball coefficient in [0, 1), or "quadratic" for α and μ from the
        quadratic model (then ``learning_rate`` must be None).
    fisher : str
        How G is formed (see ``FISHER_KINDS``).
    seed : int
        Seed of the target sampling (step t uses ``default_rng([seed, t])``).
    adapt_damping : bool
        Whether λ follows the Levenberg-Marquardt rule.
    damping_every : int
        T1: λ is adapted after steps t with ``(t + 1) % T1 == 0`` (and after every
        rejected step).
    gamma : float or None
        None ties the factored damping to λ (``γ = λ + l2``); a number is the initial
        value of a separate γ, which then replaces ``λ + l2`` in the factors
        (Martens & Grosse start from ``λ + l2``).
    adapt_gamma : bool
        Whether a separate γ is adapted by the greedy rule (ignored when ``gamma`` is None).
    gamma_every : int
        T2: γ is adapted at steps t with ``(t + 1) % T2 == 0``.
    curvature_batch_size : int or None
        The factors and the curvature products on a fresh random minibatch of this
        many examples of the step's problem (step t draws it with seed + t); the
        gradient, the loss and ρ stay on the whole problem. None (or a size of at
        least the problem's) uses the whole problem. At full batch this is the lever
        on the cost of a step: the factor pass and a product each cost about two
        gradients of the whole problem.

    Notes
    -----
    ``info.step_size`` is α (0 for a rejected step), ``info.damping`` the λ used and
    ``info.rho`` NaN unless λ was adapted from it this step. ``info`` adds ``momentum``
    (μ), ``gamma`` (the γ of the factors) and ``curvature_products`` (the ``ggn_vp``
    products of the step). Each step counts one ``"kfac_factors"`` (about one
    gradient's work for "sampled" and "empirical"), one gradient, one loss value
    and the curvature products: one with the defaults, two with
    ``momentum="quadratic"``, and one more per extra γ candidate on γ-adaptation steps.

    Followed from Martens & Grosse (2015) and deepmind/kfac-jax: the factored
    Tikhonov damping with π (§6.3); α and μ from the exact (Gauss-Newton) quadratic
    model with λ, solved as kfac-jax's ``_solve_quad_model`` does, falling back to
    α alone when the previous update is zero (§6.4, §7); ρ against the *undamped*
    model, as kfac-jax's default (``include_damping_in_quad_change=False``) and the
    package's other damped methods; the greedy choice of γ on the damped model
    every T2 steps (§6.6); the moving-average weight ``min(ε, 1 - 1/(t + 1))``.

    Deviations: γ here is the square of the paper's (the factors add π√γ and √γ/π),
    so the paper's factor ``ω₂ = (19/20)^(T2/2)`` becomes ``ω = (19/20)^T2``; λ uses
    the package's one Levenberg-Marquardt rule (3/2 and 2/3) instead of
    ``ω₁ = (19/20)^T1``; a step that does not lower the batch loss is rejected
    (the paper takes every step); eigendecompositions replace explicit inverses, so
    trying three γ costs no new decomposition; the inverses are not also refreshed
    at the first three steps; γ is kept within ``DAMPING_RANGE``.

    A batch with fewer examples than the largest factor dimension (``fan_in + 1``
    or ``fan_out``) raises a :class:`SmallBatchWarning`: each batch's factors are
    then rank-deficient, and the step is accepted on the loss of that batch alone,
    which cannot see a blow-up of the full loss (at one example per batch K-FAC
    can accept every step while the training loss grows by orders of magnitude).
    """

    divergence_hint = "raise the damping"

    def __init__(self, learning_rate=None, damping=1e-2, ema_decay=0.95, inverse_every=10,
                 momentum=0.0, fisher="sampled", seed=0, adapt_damping=True, damping_every=1,
                 gamma=None, adapt_gamma=True, gamma_every=20, curvature_batch_size=None):
        self.learning_rate = None if learning_rate is None else positive("learning_rate", learning_rate)
        self.damping = positive("damping", damping)
        self.ema_decay = in_unit_interval("ema_decay", ema_decay)
        self.inverse_every = positive_int("inverse_every", inverse_every)
        if momentum == "quadratic":
            if self.learning_rate is not None:
                raise ArgumentError(
                    'momentum="quadratic" chooses the step size from the quadratic model too: '
                    "pass learning_rate=None, or a numeric momentum with a fixed learning rate")
            self.momentum = momentum
        else:
            self.momentum = in_unit_interval('momentum (a number or "quadratic")', momentum)
        self.fisher = one_of("fisher", fisher, FISHER_KINDS)
        self.seed = random_seed("seed", seed)
        self.adapt_damping = bool(adapt_damping)
        self.damping_every = positive_int("damping_every", damping_every)
        self.gamma = None if gamma is None else positive("gamma", gamma)
        self.adapt_gamma = bool(adapt_gamma)
        self.gamma_every = positive_int("gamma_every", gamma_every)
        self.curvature_batch_size = (None if curvature_batch_size is None
                                     else positive_int("curvature_batch_size", curvature_batch_size))

    def init(self, theta):
        return KFACState(0, None, None, self.damping, self.gamma, np.zeros_like(theta, dtype=float))

    def _step(self, problem, theta, state):
        loss, g = problem.value_and_grad(theta)
        curvature = self._curvature_problem(problem, state.step)
        factors, eigen = self._update_factors(problem, curvature, theta, state)
        t, damping = state.step, state.damping
        adapt_now = self.adapt_damping and (t + 1) % self.damping_every == 0
        gammas = self._gamma_candidates(problem, state)
        directions = [self._precondition(problem, g, eigen, gamma) for gamma in gammas]
        previous = state.update if self.momentum and np.any(state.update) else None
        needs_model = self.learning_rate is None or adapt_now or len(gammas) > 1
        products = self._curvature_products(curvature, theta, directions, previous) if needs_model else None
        candidates = [self._update(g, direction, previous, products, index, damping)
                      for index, direction in enumerate(directions)]
        best = int(np.argmin([candidate[3] for candidate in candidates]))
        delta, F_delta, (alpha, mu), _ = candidates[best]
        trial = trial_loss(problem.value, theta + delta)
        accepted = decreases(loss, trial)
        rho = np.nan
        if accepted and adapt_now:
            rho = reduction_ratio(loss, trial, g @ delta + 0.5 * (delta @ F_delta))
        if self.adapt_damping and (adapt_now or not accepted):
            damping = levenberg_marquardt(damping, rho)
        info = StepInfo(loss=loss, grad_norm=norm(g), loss_after=trial if accepted else loss,
                        accepted=accepted, step_size=alpha if accepted else 0.0, damping=state.damping,
                        rho=rho, extras={"momentum": mu, "gamma": gammas[best],
                                         "curvature_products": 0 if products is None else len(products)})
        state = state._replace(factors=factors, eigen=eigen, damping=damping,
                               gamma=None if self.gamma is None else gammas[best],
                               update=delta if accepted else np.zeros_like(delta))
        return (theta + delta if accepted else theta), state, info

    def _curvature_problem(self, problem, t):
        """The step's problem, or at step t a minibatch of ``curvature_batch_size`` drawn with seed + t."""
        size = self.curvature_batch_size
        if size is None or size >= problem.num_examples:
            return problem
        return problem.minibatch(size, self.seed + t)

    def _update_factors(self, problem, curvature, theta, state):
        """Fold the factors on ``curvature`` into the moving averages; refresh the eigendecompositions."""
        t = state.step
        batch = curvature.kfac_factors(theta, self.fisher, np.random.default_rng([self.seed, t]))
        _warn_if_small(problem, batch)
        decay = min(self.ema_decay, 1.0 - 1.0 / (t + 1))
        factors = batch if state.factors is None else [
            (decay * A + (1 - decay) * A_new, decay * G + (1 - decay) * G_new)
            for (A, G), (A_new, G_new) in zip(state.factors, batch)]
        eigen = state.eigen
        if t % self.inverse_every == 0:
            eigen = [(psd_eigh(A), psd_eigh(G)) for A, G in factors]
        return factors, eigen

    def _gamma_candidates(self, problem, state):
        """The factored dampings γ to try this step, the current one first."""
        if state.gamma is None:
            return [state.damping + problem.l2]
        if not (self.adapt_gamma and (state.step + 1) % self.gamma_every == 0):
            return [state.gamma]
        omega = GAMMA_DECAY**self.gamma_every
        low, high = DAMPING_RANGE
        return [state.gamma] + [float(min(max(state.gamma * factor, low), high))
                                for factor in (omega, 1 / omega)]

    def _precondition(self, problem, g, eigen, gamma):
        """The direction ``Δ``: minus each layer's gradient through its damped Kronecker inverse."""
        direction = np.empty_like(g)
        for layer, (eigen_A, eigen_G) in zip(problem.model.layout, eigen):
            block = g[layer.params].reshape(layer.fan_in + 1, layer.fan_out)
            preconditioned = _precondition_block(block, eigen_A, eigen_G, gamma)
            direction[layer.params] = -preconditioned.ravel()
        return direction

    @staticmethod
    def _curvature_products(problem, theta, directions, previous):
        """F v for each direction and the previous update (if any), the latter last.

        One product is a ``ggn_vp``; several share one linearisation (``ggn_operator``).
        """
        vectors = directions + ([] if previous is None else [previous])
        if len(vectors) == 1:
            return [problem.ggn_vp(theta, vectors[0])]
        product = problem.ggn_operator(theta)
        return [product(v) for v in vectors]

    def _update(self, g, direction, previous, products, index, damping):
        """(δ, Fδ or None, (α, μ), M(δ)) for one direction Δ; M is NaN without products."""
        vectors = [direction] + ([] if previous is None else [previous])
        if products is None:  # a fixed learning rate, nothing to adapt: no model needed
            coefficients = [self.learning_rate] + ([] if previous is None else [self.momentum])
            return _combine(vectors, coefficients), None, _alpha_mu(coefficients), np.nan
        F_vectors = [products[index]] + ([] if previous is None else [products[-1]])
        b = np.array([g @ v for v in vectors])
        C = np.array([[u @ Fv + damping * (u @ v) for v, Fv in zip(vectors, F_vectors)] for u in vectors])
        if self.momentum == "quadratic":
            coefficients = solve_quadratic_model(b, C)
        else:
            alpha = self.learning_rate
            if alpha is None:
                alpha = solve_quadratic_model(b[:1], C[:1, :1])[0]
            coefficients = [alpha] + ([] if previous is None else [self.momentum])
        coefficients = np.asarray(coefficients, dtype=float)
        with np.errstate(over="ignore", invalid="ignore"):  # a huge fixed step: an infinite M
            model = b @ coefficients + 0.5 * coefficients @ C @ coefficients
        return (_combine(vectors, coefficients), _combine(F_vectors, coefficients),
                _alpha_mu(coefficients), model)


def _combine(vectors, coefficients):
    """Σ_i coefficients[i] vectors[i]."""
    total = coefficients[0] * vectors[0]
    for coefficient, vector in zip(coefficients[1:], vectors[1:]):
        total = total + coefficient * vector
    return total


def _alpha_mu(coefficients):
    """(α, μ) as floats; μ = 0 when the update has no momentum term."""
    return float(coefficients[0]), float(coefficients[1]) if len(coefficients) > 1 else 0.0


def _warn_if_small(problem, factors):
    """A SmallBatchWarning when the batch has fewer examples than a factor has rows."""
    largest = max(max(len(A), len(G)) for A, G in factors)
    n = problem.num_examples
    if n < largest:
        warnings.warn(
            f"K-FAC on a batch of {n} examples, fewer than the largest Kronecker factor's {largest} "
            f"rows: factors from such batches are rank-deficient, and a step is accepted on this batch's "
            f"loss alone, which cannot see the full loss blow up. Use batches of at least {largest} "
            "examples, or watch the full training loss", SmallBatchWarning, stacklevel=5)
