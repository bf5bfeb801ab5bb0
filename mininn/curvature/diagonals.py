"""Diagonals of curvature matrices of an MLP, by backpropagation."""

import numpy as np

from .mlp import backprop, check_mlp, per_example_output_gradients


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
    n = len(X)
    return model.layout.flatten([
        ((a**2).T @ delta**2 / n, np.sum(delta**2, axis=0) / n)
        for a, delta in zip(trace.inputs, deltas)])
