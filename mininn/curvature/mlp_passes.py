"""Gradients and curvature products of an MLP in plain numpy, from one stored forward pass.

The generic path (:mod:`mininn.curvature.hessian`, :mod:`mininn.curvature.gauss_newton`)
differentiates any model with autograd, and each call traces the whole computation again.
For an :class:`~mininn.nn.MLP` this module writes the passes out by hand (the algebra of
chapter 5's R-pass):

- :func:`forward` runs the network once and keeps what every later pass needs: each
  layer's input ``h_l`` and the activation's first and second derivatives at
  ``z_l = h_l W_l + b_l`` (None where they are 1 and 0: identity layers, and the second
  derivative of relu and leaky_relu).
- The gradient is one backward pass over the stored trace.
- The Gauss-Newton product ``J^T H_L J v`` is one forward R-pass (``J v``, forward mode,
  on the stored activations), the loss's output Hessian, and one backward pass
  (Schraudolph 2002).
- The Hessian-vector product is Pearlmutter's (1994) R-backprop: the Gauss-Newton passes
  plus the terms of the backpropagated gradient ``delta_l``: ``R{h_l}^T delta_l`` in each
  weight block, ``delta_l V_l^T`` in the backward R-pass, and, for curved activations,
  ``act''(z_l) * R{z_l} * g_l``. For piecewise-linear activations that last term is zero
  and is skipped.

The operators (:func:`gauss_newton_operator`, :func:`hessian_vector_operator`) do the
work that does not depend on v once (the loss's output Hessian, and for the Hessian the
backpropagated gradient) and reuse their work arrays, so that each product inside a
conjugate-gradient solve costs one forward R-pass and one backward pass. The plain
products build an operator and apply it once.

Cost, counted in matrix products of one layer's size (which dominate for wide layers;
the first layer needs none with its input's tangent, which is 0): a gradient is 3 per
layer (forward ``h W``, backward ``h^T delta`` and ``delta W^T``); a cached Gauss-Newton
product 4 (``h V``, ``R{h} W``, and the two backward ones), 4/3 of a gradient; a cached
Hessian product 6, twice a gradient. A cached Gauss-Newton product therefore takes
longer than an equally efficient gradient, and the measured ratios sit at these counts:
on the 842,340-parameter autoencoder of ``python -m benchmarks curvature`` (batch 100
and 1000, one thread, wall time on a quiet machine) a cached G v took 1.20-1.21 gradients
and a cached H v 1.62-1.64, and JAX-jit's own on one core 0.95-1.05 and 1.43-1.61 of its
gradient; measured in CPU time, the matrix products alone took 1.19-1.21 and 1.66-1.68
times the gradient's.

Conventions are those of :class:`~mininn.problem.Problem`: theta is flat, of shape (N,),
``W_1`` (row-major), ``b_1``, ``W_2``, ...; the objective is ``loss(F, Y) + l2/2 |theta|^2``
with the loss a mean over the n examples. Only the activations of
:data:`mininn.activations.DERIVATIVES` are supported (hidden and output layer): for any
other callable, or a model that is not an MLP, :func:`forward` raises
:class:`~mininn.errors.UnsupportedModelError` and callers use the generic path (check first
with :func:`is_supported`); :class:`~mininn.problem.Problem` does so. The loss enters
through ``loss.value``, ``loss.output_gradient`` and ``loss.output_hessian_operator``, so
any :class:`~mininn.losses.Loss` works. Inputs are not checked for NaN (``Problem`` does that).
"""

from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import dgemm

from ..activations import DERIVATIVES
from ..errors import ShapeError, UnsupportedModelError
from ..nn import MLP


def is_supported(model):
    """True when ``model`` is an MLP (forward pass not overridden) whose activations are all known."""
    return (isinstance(model, MLP) and type(model).forward is MLP.forward
            and type(model).forward_trace is MLP.forward_trace
            and all(activation in DERIVATIVES for activation in model.activations))


# -- the forward pass ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Trace:
    """One forward pass of an MLP at theta on inputs X, layer l = 0, 1, ..., L - 1.

    The pre-activations ``z_l = h_l W_l + b_l`` are not kept: no pass needs them once
    the activation's derivatives are known (``model.forward_trace`` gives them).

    Attributes
    ----------
    model : MLP
    theta : ndarray of shape (N,)
        Not copied: do not change it in place while the trace is in use.
    weights : list of tuple
        Views of theta, shapes (fan_in, fan_out) and (fan_out,).
    inputs : list of ndarray
        ``h_l`` of shape (n, fan_in); ``h_0 = X``, ``h_{l+1} = act(z_l)``.
    slopes : list of ndarray or None
        ``act'(z_l)`` (a boolean mask for relu); None where it is 1 everywhere.
    curvatures : list of ndarray or None
        ``act''(z_l)``; None where it is 0 everywhere (identity, relu, leaky_relu).
    outputs : ndarray of shape (n, k)
        ``F``: the output activation of ``z_{L-1}``.
    """

    model: MLP
    theta: np.ndarray
    weights: list
    inputs: list
    slopes: list
    curvatures: list
    outputs: np.ndarray

    @property
    def num_layers(self):
        return len(self.weights)


def forward(model, theta, X):
    """Run ``model`` at theta on X of shape (n, d_in) and keep what the other passes need.

    Raises UnsupportedModelError unless :func:`is_supported` (callers then use the
    generic autograd path), ShapeError for a theta or X of the wrong shape.
    """
    if not is_supported(model):
        raise UnsupportedModelError(
            f"the hand-written MLP passes need an MLP with activations from mininn.activations, "
            f"got {model!r}; use the generic autograd products of mininn.curvature for this model")
    model.check_inputs(X)
    theta = np.ascontiguousarray(theta, dtype=float)
    weights = model.layout.unflatten(theta)
    h = np.ascontiguousarray(X, dtype=float)
    inputs, slopes, curvatures = [], [], []
    for index, (W, b) in enumerate(weights):
        inputs.append(h)
        z = h @ W
        z += b
        h, slope, curvature = DERIVATIVES[model.activations[index]](z)
        slopes.append(slope)
        curvatures.append(curvature)
    return Trace(model, theta, weights, inputs, slopes, curvatures, h)


# -- passes over a trace ---------------------------------------------------------------------------


def _fortran_operand(x):
    """(array, transpose flag) for BLAS such that op(array) is x: x itself when it is
    Fortran-ordered, else x.T (Fortran-ordered when x is C-ordered) with the flag set."""
    return (x, 0) if x.flags.f_contiguous else (x.T, 1)


def _add_matmul(out, a, b):
    """``out += a @ b`` in place, by BLAS dgemm with beta = 1 (no temporary).

    ``out`` must be C-contiguous; ``a`` and ``b`` C- or Fortran-ordered (e.g. a transposed
    view). Computed as the Fortran-ordered ``out.T += b.T @ a.T``.
    """
    first, transpose_first = _fortran_operand(b.T)
    second, transpose_second = _fortran_operand(a.T)
    dgemm(1.0, first, second, beta=1.0, c=out.T, trans_a=transpose_first, trans_b=transpose_second,
          overwrite_c=1)
    return out


def _layer_arrays(trace):
    """One uninitialised (n, fan_out) array per layer: the work space an operator reuses
    on every call (allocating fresh arrays of this size costs page faults each time)."""
    n = len(trace.outputs)
    return [np.empty((n, layer.fan_out)) for layer in trace.model.layout]


def backpropagated_errors(trace, output_cotangent, work=None):
    """Yield ``(l, g_l, delta_l)`` from the top layer down: ``g_{L-1}`` = output_cotangent,
    ``delta_l = act'(z_l) * g_l``, ``g_{l-1} = delta_l W_l^T`` (shapes (n, fan_out)).

    Where the activation does not curve, g_l is not needed by any product and delta_l
    overwrites it (output_cotangent included). ``g_{l-1}`` is written into ``work[l - 1]``
    when work arrays (one (n, fan_out) array per layer) are given.
    """
    g = output_cotangent
    for index in reversed(range(trace.num_layers)):
        slope = trace.slopes[index]
        if slope is None:
            delta = g
        elif trace.curvatures[index] is None:
            delta = np.multiply(g, slope, out=g)
        else:
            delta = g * slope
        yield index, g, delta
        if index:
            g = np.matmul(delta, trace.weights[index][0].T, out=None if work is None else work[index - 1])


def _pull_back(trace, output_cotangent, out, work=None):
    """``J^T U`` written into ``out`` (shape (N,)): one backward pass; U = output_cotangent, (n, k),
    which may be overwritten."""
    for index, _, delta in backpropagated_errors(trace, output_cotangent, work):
        layer = trace.model.layout.layers[index]
        np.matmul(trace.inputs[index].T, delta, out=out[layer.weight].reshape(layer.weight_shape))
        np.sum(delta, axis=0, out=out[layer.bias])
    return out


def _push_forward(trace, directions, keep_preactivations, work):
    """The forward R-pass along v (given as per-layer (V_l, c_l)), ``R{z_l}`` written into
    the work arrays ``work[l]``.

    Returns ``input_tangents`` (``R{h_l}``, None for l = 0), ``preactivation_tangents``
    (``R{z_l}``, kept only where the activation curves and ``keep_preactivations``, else
    None) and ``R{F} = J v`` of shape (n, k).
    """
    input_tangents, preactivation_tangents = [None], []
    tangent = None
    for index, ((W, _), (V, c)) in enumerate(zip(trace.weights, directions)):
        Rz = np.matmul(trace.inputs[index], V, out=work[index])
        if tangent is not None:
            _add_matmul(Rz, tangent, W)
        Rz += c
        slope = trace.slopes[index]
        keep = keep_preactivations and trace.curvatures[index] is not None
        preactivation_tangents.append(Rz if keep else None)
        if slope is None:
            tangent = Rz
        elif keep:
            tangent = Rz * slope
        else:
            tangent = np.multiply(Rz, slope, out=Rz)
        input_tangents.append(tangent)
    return input_tangents[:-1], preactivation_tangents, tangent


def _checked_targets(trace, Y):
    """Y as a float array, or ShapeError unless it has the outputs' shape (n, k)."""
    Y = np.asarray(Y, dtype=float)
    if Y.shape != trace.outputs.shape:
        raise ShapeError(f"Y has shape {Y.shape}, but the outputs have {trace.outputs.shape}: pass "
                         "one target row per example of the trace (one-hot rows for class labels)")
    return Y


def _add_l2(out, l2, vector):
    if l2:
        out += l2 * vector
    return out


# -- the public products ------------------------------------------------------------------------------


def value(trace, loss, Y, l2=0.0):
    """The objective ``loss(F, Y) + l2/2 |theta|^2`` at the trace, a float."""
    total = loss.value(trace.outputs, _checked_targets(trace, Y))
    if l2:  # (0 * an overflowed |theta|^2 would be NaN)
        total = total + 0.5 * l2 * (trace.theta @ trace.theta)
    return float(total)


def gradient(trace, loss, Y, l2=0.0):
    """Gradient of the objective at the trace, shape (N,): one backward pass."""
    output_gradient = loss.output_gradient(trace.outputs, _checked_targets(trace, Y))
    out = _pull_back(trace, output_gradient, np.empty(trace.model.num_params))
    return _add_l2(out, l2, trace.theta)


def value_and_gradient(trace, loss, Y, l2=0.0):
    """``(value(...), gradient(...))`` of the objective at the trace."""
    return value(trace, loss, Y, l2), gradient(trace, loss, Y, l2)


def gauss_newton_operator(trace, loss, Y, l2=0.0):
    """A function v -> G v, ``G = J^T H_L J + l2 I`` at the trace (Schraudolph 2002).

    Building it evaluates the loss's output Hessian once; each call is one forward
    R-pass and one backward pass, and returns a new array of shape (N,).
    """
    output_hessian = loss.output_hessian_operator(trace.outputs, _checked_targets(trace, Y))
    layout = trace.model.layout
    forward_work, backward_work = _layer_arrays(trace), _layer_arrays(trace)

    def product(v):
        _, _, output_tangent = _push_forward(trace, layout.unflatten(v), False, forward_work)
        out = np.empty(layout.num_params)
        _pull_back(trace, output_hessian(output_tangent), out, backward_work)
        return _add_l2(out, l2, v)

    return product


def gauss_newton_vector_product(trace, loss, Y, v, l2=0.0):
    """``G v`` with ``G = J^T H_L J + l2 I`` at the trace, shape (N,)."""
    return gauss_newton_operator(trace, loss, Y, l2)(v)


def hessian_vector_operator(trace, loss, Y, l2=0.0):
    """A function v -> H v, H the Hessian of the objective at the trace (Pearlmutter 1994).

    Building it backpropagates the loss gradient once (each layer's ``delta_l``, and
    ``act''(z_l) * g_l`` where the activation curves) and evaluates the output Hessian;
    each call is one forward R-pass and one backward R-pass, and returns a new array of
    shape (N,).
    """
    Y = _checked_targets(trace, Y)
    output_hessian = loss.output_hessian_operator(trace.outputs, Y)
    output_gradient = loss.output_gradient(trace.outputs, Y)
    deltas, bends = [None] * trace.num_layers, [None] * trace.num_layers
    for index, g, delta in backpropagated_errors(trace, output_gradient):
        deltas[index] = delta
        if trace.curvatures[index] is not None:
            bends[index] = trace.curvatures[index] * g
        if index == 1 and trace.curvatures[0] is None:
            break  # no term of H v needs the first layer's delta
    layout = trace.model.layout
    forward_work, backward_work = _layer_arrays(trace), _layer_arrays(trace)

    def product(v):
        directions = layout.unflatten(v)
        input_tangents, preactivation_tangents, output_tangent = _push_forward(
            trace, directions, True, forward_work)
        out = np.empty(layout.num_params)
        Rg = output_hessian(output_tangent)  # R{g_l}, from the top layer down
        for index in reversed(range(trace.num_layers)):
            layer, slope = layout.layers[index], trace.slopes[index]
            Rdelta = Rg if slope is None else np.multiply(Rg, slope, out=Rg)
            if bends[index] is not None:
                Rdelta += bends[index] * preactivation_tangents[index]
            weight_block = out[layer.weight].reshape(layer.weight_shape)
            np.matmul(trace.inputs[index].T, Rdelta, out=weight_block)
            np.sum(Rdelta, axis=0, out=out[layer.bias])
            if index:
                _add_matmul(weight_block, input_tangents[index].T, deltas[index])
                Rg = np.matmul(Rdelta, trace.weights[index][0].T, out=backward_work[index - 1])
                _add_matmul(Rg, deltas[index], directions[index][0].T)
        return _add_l2(out, l2, v)

    return product


def hessian_vector_product(trace, loss, Y, v, l2=0.0):
    """``H v`` with H the Hessian of the objective at the trace, shape (N,).

    R-backprop (a forward R-pass, then the backward R-pass) is this module's one method:
    it is faster than both of autograd's at the sizes the book and the benchmark use.
    Forward pass included, one thread, in autograd gradients: on chapter 5's autoencoder
    (N = 52,221, 500 images; CPU time) 0.99 against 1.99 for forward-over-reverse and 2.23
    for reverse-over-reverse; on the benchmark's autoencoder (N = 842,340; wall time on a
    quiet machine) 0.79 against 3.55 and 2.68 at batch 100, 1.40 against 2.58 and 2.41 at
    batch 1000.
    """
    return hessian_vector_operator(trace, loss, Y, l2)(v)
