"""Diagonals of curvature matrices of an MLP, by backpropagation.

For a dense layer ``z = a @ W + b`` the gradient of example i's loss with respect to W
is the outer product of its input ``a_i`` and a pre-activation cotangent ``delta_i``, so
the mean over examples of its squares is ``(a * a)^T (delta * delta) / n``: a diagonal
costs one pullback of per-example output cotangents per term, never a per-example gradient.
"""

import numpy as np

from ..validation import generator, positive_int
from .mlp import backprop, check_mlp, output_hessian_roots, per_example_output_gradients


def _mean_squares(model, inputs, cotangent_sets):
    """``sum over sets of (1/n) sum_i (a_i delta_i^T)^2`` in theta's layout, shape (N,).

    ``cotangent_sets`` yields, per term, the per-layer pre-activation cotangents
    ``delta`` of shape (n, fan_out) (a pullback's output).
    """
    n = len(inputs[0])
    totals = [(np.zeros(layer.weight_shape), np.zeros(layer.fan_out)) for layer in model.layout]
    for deltas in cotangent_sets:
        for (W, b), a, delta in zip(totals, inputs, deltas):
            W += (a**2).T @ delta**2 / n
            b += np.sum(delta**2, axis=0) / n
    return model.layout.flatten(totals)


def empirical_fisher_diagonal(model, theta, X, loss, Y):
    """Diagonal of the empirical Fisher ``(1/n) sum_i grad l_i * grad l_i`` of an MLP.

    ``l_i`` is example i's loss, so ``grad l_i`` is n times its share of the gradient
    of the mean loss; an L2 term is not included. The per-example gradients are never
    formed: for a dense layer the gradient of ``l_i`` with respect to W is the outer
    product of the input ``a_i`` and ``delta_i = dl_i/dz_i``, so the mean of its squares
    is ``(a * a)^T (delta * delta) / n``. One forward and one reverse pass: about one
    gradient's work.

    Parameters
    ----------
    model : MLP
        The network.
    theta : ndarray of shape (N,)
        Parameters.
    X : ndarray of shape (n, d_in)
        Inputs.
    loss : Loss
        The loss (a mean over examples).
    Y : ndarray of shape (n, d_out)
        Targets.

    Returns
    -------
    ndarray of shape (N,)
        The non-negative diagonal, in theta's layout.
    """
    check_mlp(model, "the empirical Fisher diagonal")
    trace = backprop(model, theta, X)
    deltas = trace.pullback(per_example_output_gradients(loss, trace.outputs, Y))
    return _mean_squares(model, trace.inputs, [deltas])


def ggn_diagonal(model, theta, X, loss, Y, samples=None, rng=0):
    """Diagonal of the Gauss-Newton matrix ``G = (1/n) sum_i J_i^T H_i J_i`` of an MLP.

    ``J_i`` is the Jacobian of example i's outputs with respect to theta (through the
    output activation) and ``H_i`` the Hessian of its loss with respect to those outputs;
    an L2 term is not included.

    Exact (``samples=None``): with ``R_i R_i^T = H_i`` (see
    :func:`~mininn.curvature.mlp.output_hessian_roots`), ``G = (1/n) sum_i sum_c
    (J_i^T R_ic)(J_i^T R_ic)^T``, so pulling back each column c of the R_i, one reverse
    pass per output, gives the diagonal as a sum of mean squares: one forward and k
    reverse passes for k outputs (the "DiagGGN" of BackPACK, Dangel et al. 2020).

    Monte Carlo (``samples=s``): the mean over s target draws ``Y_hat`` from the model's
    predictive distribution (``loss.sample_targets``) of the mean squared per-example
    gradients ``(1/n) sum_i (grad l_i(Y_hat_i))^2``. For the losses of
    :mod:`mininn.losses` the expected outer product of the output gradient is ``H_i``, so
    the estimate is unbiased, and its error shrinks as ``1/sqrt(s)``: one forward and s
    reverse passes.

    For an MLP whose hidden activations are piecewise linear (relu, leaky_relu,
    identity) and whose output is linear (``output="identity"``: the losses take
    logits), the outputs are linear in each single weight away from the kinks, so the
    Hessian's diagonal equals this one.

    Parameters
    ----------
    model : MLP
        The network.
    theta : ndarray of shape (N,)
        Parameters.
    X : ndarray of shape (n, d_in)
        Inputs.
    loss : Loss
        The loss (a mean over examples).
    Y : ndarray of shape (n, d_out)
        Targets (the losses' output Hessians do not depend on them; unused by the Monte
        Carlo estimate).
    samples : int or None
        None for the exact diagonal, else the number s of sampled targets per example.
    rng : numpy.random.Generator or int
        Random generator, or its seed, for the samples: draw j is
        ``loss.sample_targets(F, rng)`` after j - 1 earlier draws from the same generator.

    Returns
    -------
    ndarray of shape (N,)
        The non-negative diagonal, in theta's layout.
    """
    check_mlp(model, "the Gauss-Newton diagonal")
    trace = backprop(model, theta, X)
    F = trace.outputs
    if samples is None:
        roots = output_hessian_roots(loss, F, Y)
        return _mean_squares(model, trace.inputs, (trace.pullback(roots[:, :, c]) for c in range(F.shape[1])))
    samples, rng = positive_int("samples", samples), generator("rng", rng)
    draws = (trace.pullback(per_example_output_gradients(loss, F, loss.sample_targets(F, rng)))
             for _ in range(samples))
    return _mean_squares(model, trace.inputs, draws) / samples
