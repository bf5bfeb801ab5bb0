"""Kronecker-factored approximate curvature, K-FAC (Martens & Grosse 2015).

Conventions. Layer l of an :class:`~mininn.nn.MLP` computes ``z = a @ W + b``
for inputs ``a`` of shape (n, fan_in). With the homogeneous input
``ā = [a, 1]`` and ``W̄ = [W; b]`` of shape (fan_in + 1, fan_out) this is
``z = ā @ W̄``, and the layer's slice ``layer.params`` of theta holds exactly
``W̄`` row-major (W row-major, then b as its last row). The objective is a mean
over examples, ``L = (1/n) Σ_i ℓ_i``, so the layer's Gauss-Newton block is

    B = (1/n) Σ_i (ā_i ā_iᵀ) ⊗ (D_iᵀ H_i D_i)

with ``D_i`` the Jacobian of example i's output with respect to its
pre-activation ``z_i`` and ``H_i`` the Hessian of the per-example loss ``ℓ_i``
with respect to the output. K-FAC replaces this mean of Kronecker products by
the Kronecker product of means, ``A ⊗ G``, with

    A = (1/n) Σ_i ā_i ā_iᵀ,    G = (1/n) Σ_i g_i g_iᵀ,

where ``g_i = ∂ℓ_i/∂z_i`` is the gradient of the per-example loss (n times the
gradient of the mean loss) at targets drawn from the model's predictive
distribution. For the losses of :mod:`mininn.losses` the Fisher of that
distribution with respect to the outputs equals ``H_i``, so ``E[g_i g_iᵀ] =
D_iᵀ H_i D_i``: the sampled G is an unbiased estimate of the "exact" one.
With the exact G, ``A ⊗ G = B`` whenever ``D_iᵀ H_i D_i`` is the same for
every example: a single example, a one-layer linear model with MSE, and the
last layer of any MLP with a linear output and MSE (``D_i = I``, ``H_i = 2 I``).
"""

import numpy as np
from autograd import grad

from ..curvature import layer_blocks
from ..errors import ShapeError, UnknownNameError
from ..losses import get_loss
from ..nn import MLP
from .base import Optimizer, in_unit_interval, levenberg_marquardt, positive

#: How G is formed. "sampled": targets drawn from the model's predictive
#: distribution, one per example (the true Fisher, Monte Carlo). "empirical":
#: the data's targets (the empirical Fisher, which is not a curvature estimate).
#: "exact": the expectation over the predictive distribution in closed form,
#: ``G = (1/n) Σ_i D_iᵀ H_i D_i`` (one backward pass per output).
FISHER_KINDS = ("sampled", "empirical", "exact")

def _check_model(model):
    if not isinstance(model, MLP):
        raise TypeError(
            f"K-FAC needs a mininn.MLP, got {type(model).__name__}: the factors are built from "
            "the inputs and pre-activations of its dense layers (MLP.forward_trace)"
        )


def _output_hessian_roots(loss, F, Y):
    """R of shape (n, k, k) with ``R_i R_iᵀ = H_i``, the per-example output Hessians."""
    n, k = F.shape
    columns = [n * loss.output_hessian_vp(F, Y, np.tile(np.eye(k)[c], (n, 1))) for c in range(k)]
    eigenvalues, vectors = np.linalg.eigh(np.stack(columns, axis=2))
    return vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None, :]


def kfac_factors(model, theta, X, loss, Y=None, fisher="sampled", rng=0):
    """The K-FAC factors ``(A, G)`` of every layer of an MLP on a batch.

    Parameters
    ----------
    model : MLP
        The network.
    theta : ndarray of shape (N,)
        Parameters.
    X : ndarray of shape (n, d_in)
        Inputs, one example per row.
    loss : str or Loss
        The loss whose curvature is approximated (a mean over examples).
    Y : ndarray of shape (n, d_out), optional
        Targets; needed for ``fisher="empirical"`` and ``"exact"`` (where the
        output Hessian is evaluated at them), ignored by ``"sampled"``.
    fisher : str
        "sampled", "empirical" or "exact" (see ``FISHER_KINDS``).
    rng : numpy.random.Generator or int
        Random generator, or its seed, for the sampled targets.

    Returns
    -------
    list of tuple
        Per layer, ``(A, G)``: ``A = (1/n) Σ_i ā_i ā_iᵀ`` of shape
        (fan_in + 1, fan_in + 1), the bias coordinate last, and
        ``G = (1/n) Σ_i g_i g_iᵀ`` of shape (fan_out, fan_out), with ``g_i``
        the gradient of the per-example loss with respect to the layer's
        pre-activation. Both are symmetric positive semidefinite.
    """
    _check_model(model)
    loss = get_loss(loss)
    if fisher not in FISHER_KINDS:
        raise UnknownNameError(f"unknown fisher {fisher!r}; choose one of {FISHER_KINDS}")
    X = np.asarray(X, dtype=float)
    inputs, _ = model.forward_trace(theta, X)
    F, pullback = model.preactivation_pullback(theta, X)
    n = len(X)
    if fisher == "sampled":
        Y = loss.sample_targets(F, np.random.default_rng(rng))
    elif Y is None or np.shape(Y) != F.shape:
        raise ShapeError(
            f'fisher="{fisher}" needs targets Y of shape {F.shape}, got '
            f"{None if Y is None else np.shape(Y)}; pass Y, or use fisher=\"sampled\""
        )
    if fisher == "exact":
        roots = _output_hessian_roots(loss, F, Y)
        cotangents = [roots[:, :, c] for c in range(F.shape[1])]
    else:
        cotangents = [n * grad(lambda outputs: loss.value(outputs, Y))(F)]
    G = [np.zeros((layer.fan_out, layer.fan_out)) for layer in model.layout]
    for U in cotangents:
        for l, g in enumerate(pullback(U)):
            G[l] += g.T @ g / n
    factors = []
    for a, G_l in zip(inputs, G):
        a_bar = np.hstack([a, np.ones((n, 1))])
        factors.append((a_bar.T @ a_bar / n, G_l))
    return factors


def kfac_block(A, G):
    """The K-FAC approximation ``A ⊗ G`` of one layer's curvature block, in theta's order.

    Parameters
    ----------
    A : ndarray of shape (fan_in + 1, fan_in + 1)
        Input factor, bias coordinate last.
    G : ndarray of shape (fan_out, fan_out)
        Pre-activation gradient factor.

    Returns
    -------
    ndarray of shape (P, P)
        With P = (fan_in + 1) fan_out, rows and columns ordered as the layer's
        slice ``layer.params`` of theta (W row-major, then b), so it compares
        directly with ``layer_blocks(problem.ggn(theta), model.layout)[l][l]``.
        Entry (i fan_out + j, k fan_out + m) is ``A[i, k] G[j, m]``.
    """
    return np.kron(A, G)


def kfac_relative_errors(problem, theta, fisher="exact", rng=0):
    """Relative Frobenius error of each layer's K-FAC block against the exact Gauss-Newton block.

    Parameters
    ----------
    problem : Problem
        An MLP problem small enough for ``problem.ggn`` (dense).
    theta : ndarray of shape (N,)
        Parameters.
    fisher : str
        How G is formed (see ``FISHER_KINDS``).
    rng : numpy.random.Generator or int
        Random generator, or its seed, for ``fisher="sampled"``.

    Returns
    -------
    ndarray of shape (num_layers,)
        ``|A ⊗ G - B| / |B|`` per layer, with B the diagonal block of the loss's
        Gauss-Newton matrix (the L2 term, ``l2 I``, is left out of both).
    """
    factors = kfac_factors(problem.model, theta, problem.X, problem.loss, problem.Y, fisher, rng)
    blocks = layer_blocks(problem.ggn(theta), problem.model.layout)
    errors = []
    for l, (A, G) in enumerate(factors):
        exact = blocks[l][l] - problem.l2 * np.eye(len(blocks[l][l]))
        errors.append(np.linalg.norm(kfac_block(A, G) - exact) / np.linalg.norm(exact))
    return np.array(errors)


def _eigen(matrix):
    eigenvalues, vectors = np.linalg.eigh(matrix)
    return np.clip(eigenvalues, 0.0, None), vectors


def _precondition(gradient_block, eigen_A, eigen_G, gamma):
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

    ``info`` adds ``loss_after`` (the loss at the trial point, nan when that
    point was not finite), ``step_size`` (α), ``damping`` (the λ used),
    ``accepted`` and ``rho`` (None without ``adapt_damping``, nan for a
    rejected step). Each step counts one ``"kfac_factors"`` in
    ``problem.counts`` (about one gradient's work for "sampled" and
    "empirical"), besides the usual evaluations.

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

    def __init__(self, learning_rate=None, damping=1e-2, ema_decay=0.95, inverse_every=10,
                 momentum=0.0, fisher="sampled", seed=0, adapt_damping=True):
        self.learning_rate = None if learning_rate is None else positive("learning_rate", learning_rate)
        self.damping = positive("damping", damping)
        self.ema_decay = in_unit_interval("ema_decay", ema_decay)
        if int(inverse_every) != inverse_every or inverse_every < 1:
            raise ValueError(f"inverse_every must be a positive integer, got {inverse_every!r}")
        self.inverse_every = int(inverse_every)
        self.momentum = in_unit_interval("momentum", momentum)
        if fisher not in FISHER_KINDS:
            raise UnknownNameError(f"unknown fisher {fisher!r}; choose one of {FISHER_KINDS}")
        self.fisher = fisher
        self.seed = int(seed)
        self.adapt_damping = bool(adapt_damping)

    def init(self, theta):
        return {"step": 0, "factors": None, "eigen": None, "damping": self.damping,
                "update": np.zeros_like(theta, dtype=float)}

    def step(self, problem, theta, state):
        t, damping = state["step"], state["damping"]
        loss, g = problem.value_and_grad(theta)
        info = {"loss": loss, "grad_norm": float(np.linalg.norm(g)), "damping": damping}

        problem.counts["kfac_factors"] += 1
        batch = kfac_factors(problem.model, theta, problem.X, problem.loss, problem.Y,
                             self.fisher, np.random.default_rng([self.seed, t]))
        decay = min(self.ema_decay, 1.0 - 1.0 / (t + 1))
        factors = batch if state["factors"] is None else [
            (decay * A + (1 - decay) * A_new, decay * G + (1 - decay) * G_new)
            for (A, G), (A_new, G_new) in zip(state["factors"], batch)]
        eigen = state["eigen"]
        if t % self.inverse_every == 0:
            eigen = [(_eigen(A), _eigen(G)) for A, G in factors]

        direction = np.empty_like(g)
        for layer, (eigen_A, eigen_G) in zip(problem.model.layout, eigen):
            block = g[layer.params].reshape(layer.fan_in + 1, layer.fan_out)
            preconditioned = _precondition(block, eigen_A, eigen_G, damping + problem.l2)
            direction[layer.params] = -preconditioned.ravel()

        if self.learning_rate is None:
            F_direction = problem.ggn_vp(theta, direction)
            denominator = direction @ F_direction + damping * (direction @ direction)
            alpha = -(g @ direction) / denominator if denominator > 0 else 0.0
        else:
            alpha = self.learning_rate
        delta = alpha * direction + self.momentum * state["update"]

        candidate = theta + delta
        accepted = bool(np.all(np.isfinite(candidate)))
        loss_after = float("nan")
        if accepted:
            with np.errstate(over="ignore", invalid="ignore"):  # a wild trial step is rejected below
                loss_after = problem.value(candidate)
            accepted = bool(loss_after <= loss)
        rho = None
        if self.adapt_damping:
            rho = float("nan")
            if accepted:
                reuse = self.learning_rate is None and self.momentum == 0
                F_delta = alpha * F_direction if reuse else problem.ggn_vp(theta, delta)
                model_change = g @ delta + 0.5 * (delta @ F_delta)
                if model_change < 0:
                    rho = float((loss_after - loss) / model_change)
            damping = levenberg_marquardt(damping, rho)

        if accepted:
            theta = candidate
        info.update(loss_after=loss_after, step_size=float(alpha), accepted=accepted, rho=rho)
        state = {"step": t + 1, "factors": factors, "eigen": eigen, "damping": damping,
                 "update": delta if accepted else np.zeros_like(delta)}
        return theta, state, info
