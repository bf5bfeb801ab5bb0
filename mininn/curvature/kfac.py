"""Kronecker-factored approximate curvature, K-FAC (Martens & Grosse 2015): the factors.

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

from ..errors import ShapeError
from ..losses import get_loss
from ..validation import generator, one_of
from .dense import layer_blocks
from .mlp import backprop, check_mlp, output_hessian_roots, per_example_output_gradients

#: How G is formed. "sampled": targets drawn from the model's predictive
#: distribution, one per example (the true Fisher, Monte Carlo). "empirical":
#: the data's targets (the empirical Fisher, which is not a curvature estimate).
#: "exact": the expectation over the predictive distribution in closed form,
#: ``G = (1/n) Σ_i D_iᵀ H_i D_i`` (one backward pass per output).
FISHER_KINDS = ("sampled", "empirical", "exact")

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
    check_mlp(model, "K-FAC")
    loss = get_loss(loss)
    one_of("fisher", fisher, FISHER_KINDS)
    X = np.asarray(X, dtype=float)
    trace = backprop(model, theta, X)
    F, n = trace.outputs, len(X)
    if fisher == "sampled":
        Y = loss.sample_targets(F, generator("rng", rng))
    elif Y is None or np.shape(Y) != F.shape:
        raise ShapeError(
            f'fisher="{fisher}" needs targets Y of shape {F.shape}, got '
            f"{None if Y is None else np.shape(Y)}; pass Y, or use fisher=\"sampled\""
        )
    if fisher == "exact":
        roots = output_hessian_roots(loss, F, Y)
        cotangents = [roots[:, :, c] for c in range(F.shape[1])]
    else:
        cotangents = [per_example_output_gradients(loss, F, Y)]
    G = [np.zeros((layer.fan_out, layer.fan_out)) for layer in model.layout]
    for U in cotangents:
        for l, g in enumerate(trace.pullback(U)):
            G[l] += g.T @ g / n
    factors = []
    for a, G_l in zip(trace.inputs, G):
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
    factors = problem.kfac_factors(theta, fisher, rng)
    blocks = layer_blocks(problem.ggn(theta), problem.model.layout)
    errors = []
    for l, (A, G) in enumerate(factors):
        exact = blocks[l][l] - problem.l2 * np.eye(len(blocks[l][l]))
        errors.append(np.linalg.norm(kfac_block(A, G) - exact) / np.linalg.norm(exact))
    return np.array(errors)
