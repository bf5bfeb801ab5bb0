"""Per-example backpropagation through an MLP: what Kronecker factors and diagonals are made of.

For a dense layer ``z = a @ W + b`` the gradient of example i's loss with respect to W
is the outer product of the layer's input ``a_i`` and ``delta_i = dl_i/dz_i``. One forward
pass records every layer's input; one reverse pass from per-example output cotangents
gives every example's ``delta_i`` at once (the rows of a batch are independent examples).
The passes are the hand-written ones of :mod:`mininn.curvature.mlp_passes` where the
activations allow, autograd's otherwise.
"""

from collections.abc import Callable
from typing import NamedTuple

import autograd.numpy as anp
import numpy as np
from autograd import grad, make_vjp
from autograd.tracer import getval

from ..errors import UnsupportedModelError
from ..nn import MLP
from . import mlp_passes


class MLPBackprop(NamedTuple):
    """One forward pass of an MLP, ready for per-example reverse passes."""

    #: ``inputs[l]`` of shape (n, fan_in): layer l's input (X for the first layer).
    inputs: list
    #: The network outputs F, shape (n, output_dim).
    outputs: np.ndarray
    #: Maps U of shape (n, output_dim) to one array per layer, of shape (n, fan_out), whose
    #: row i is ``D_i^T U_i``, with ``D_i`` the Jacobian of example i's output with respect
    #: to that layer's pre-activation ``z_i``.
    pullback: Callable


def check_mlp(model, needed_by):
    """Raise UnsupportedModelError unless model is an MLP; ``needed_by`` names the caller."""
    if not isinstance(model, MLP):
        raise UnsupportedModelError(
            f"{needed_by} needs a mininn.MLP, got {type(model).__name__}: it is built from the "
            "inputs and pre-activation gradients of the network's dense layers")


def backprop(model, theta, X):
    """The :class:`MLPBackprop` of an MLP at theta on inputs X of shape (n, input_dim)."""
    if mlp_passes.is_supported(model):
        trace = mlp_passes.forward(model, theta, X)

        def pullback(U):
            deltas = [None] * trace.num_layers
            for index, _, delta in mlp_passes.backpropagated_errors(trace, np.array(U, dtype=float)):
                deltas[index] = delta
            return deltas

        return MLPBackprop(trace.inputs, trace.outputs, pullback)
    model.check_inputs(X)
    params = model.layout.unflatten(theta)
    inputs = []

    def outputs(perturbations):
        inputs.clear()
        h = X
        for index, ((W, b), e) in enumerate(zip(params, perturbations)):
            inputs.append(getval(h))
            z = anp.dot(h, W) + b + e
            h = model.activations[index](z)
        return h

    zeros = [np.zeros((len(X), layer.fan_out)) for layer in model.layout]
    pullback, F = make_vjp(outputs)(zeros)
    return MLPBackprop(inputs, F, pullback)


def per_example_output_gradients(loss, F, Y):
    """``dl_i/dF_i`` for every example, shape (n, k): n times the gradient of the mean loss."""
    return len(F) * grad(lambda outputs: loss.value(outputs, Y))(F)


def output_hessian_roots(loss, F, Y):
    """R of shape (n, k, k) with ``R_i R_i^T = H_i``, the per-example output Hessians.

    ``H_i`` is the Hessian of example i's loss ``l_i`` with respect to its outputs
    ``F_i`` (n times the i-th block of the mean loss's), positive semi-definite for the
    losses of :mod:`mininn.losses`; ``R_i`` comes from its eigendecomposition, with
    eigenvalues below 0 (rounding) set to 0. Pulling back the columns ``R[:, :, c]``
    gives per-example factors of the Gauss-Newton matrix: ``sum_c (D_i^T R_ic)(D_i^T R_ic)^T
    = D_i^T H_i D_i``.
    """
    n, k = F.shape
    columns = [n * loss.output_hessian_vp(F, Y, np.tile(np.eye(k)[c], (n, 1))) for c in range(k)]
    eigenvalues, vectors = np.linalg.eigh(np.stack(columns, axis=2))
    return vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None, :]
