"""Multilayer perceptrons whose parameters are one flat float64 vector.

Conventions: a batch ``X`` has shape (n, d_in), one example per row. Layer
``l`` maps ``h`` of shape (n, fan_in) to ``act(h @ W + b)`` with ``W`` of shape
(fan_in, fan_out) and ``b`` of shape (fan_out,). The flat vector ``theta``
holds ``W_1, b_1, W_2, b_2, ...`` in that order, each weight matrix row-major.
"""

from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np

from .activations import PIECEWISE_LINEAR, get_activation
from .errors import ShapeError
from .validation import one_of, positive_int, random_seed

#: Number of nonzero incoming weights per unit in Martens' (2010) sparse initialisation.
SPARSE_INIT_CONNECTIONS = 15


@dataclass(frozen=True)
class LayerLayout:
    """Where one dense layer's parameters live inside theta.

    Attributes
    ----------
    index : int
        Position of the layer, 0 for the first.
    weight : slice
        Slice of theta holding W, row-major, shape ``weight_shape``.
    bias : slice
        Slice of theta holding b, shape ``(fan_out,)``.
    weight_shape : tuple
        (fan_in, fan_out).
    """

    index: int
    weight: slice
    bias: slice
    weight_shape: tuple

    @property
    def params(self):
        """Slice of theta holding W and b of this layer together."""
        return slice(self.weight.start, self.bias.stop)

    @property
    def fan_in(self):
        return self.weight_shape[0]

    @property
    def fan_out(self):
        return self.weight_shape[1]


class ParameterLayout:
    """The map between the flat vector theta and per-layer ``(W, b)`` pairs."""

    def __init__(self, sizes):
        layers, offset = [], 0
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            weight = slice(offset, offset + fan_in * fan_out)
            bias = slice(weight.stop, weight.stop + fan_out)
            layers.append(LayerLayout(index, weight, bias, (fan_in, fan_out)))
            offset = bias.stop
        self.layers = tuple(layers)
        self.num_params = offset

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    @property
    def boundaries(self):
        """Offsets in theta where each layer starts, plus num_params at the end."""
        return [layer.params.start for layer in self.layers] + [self.num_params]

    def unflatten(self, theta):
        """List of per-layer ``(W, b)`` views of theta (works on autograd values too)."""
        self.check(theta)
        return [
            (anp.reshape(theta[layer.weight], layer.weight_shape), theta[layer.bias])
            for layer in self.layers
        ]

    def flatten(self, params):
        """Inverse of :meth:`unflatten`: a list of ``(W, b)`` pairs to one float64 vector."""
        if len(params) != len(self.layers):
            raise ShapeError(f"expected {len(self.layers)} (W, b) pairs, got {len(params)}")
        parts = []
        for layer, (W, b) in zip(self.layers, params):
            W, b = np.asarray(W, dtype=float), np.asarray(b, dtype=float)
            if W.shape != layer.weight_shape or b.shape != (layer.fan_out,):
                raise ShapeError(
                    f"layer {layer.index}: expected W {layer.weight_shape} and b ({layer.fan_out},), "
                    f"got W {W.shape} and b {b.shape}"
                )
            parts += [W.ravel(), b]
        return np.concatenate(parts)

    def check(self, theta):
        """Raise ShapeError unless theta is a vector of length num_params."""
        shape = anp.shape(theta)
        if shape != (self.num_params,):
            raise ShapeError(
                f"theta has shape {shape}, but this model has {self.num_params} parameters: "
                f"pass a flat vector of shape ({self.num_params},), e.g. from model.init(seed)"
            )


class MLP:
    """A fully connected network ``sizes[0] -> ... -> sizes[-1]``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first; at least two entries.
    activation : str, callable or sequence
        Hidden-layer activation (see ``mininn.activations``), default "relu"; or one per
        hidden layer, a sequence of ``len(sizes) - 2`` of them (e.g. a linear code layer
        among logistic ones: ``["sigmoid", "sigmoid", "identity", "sigmoid"]``).
    output : str or callable
        Output-layer activation, default "identity" (losses take logits).
    init : str
        "he" (normal, variance 2 / fan_in), "glorot" (normal, variance
        2 / (fan_in + fan_out)) or "sparse" (Martens 2010: 15 nonzero N(0, 1)
        incoming weights per unit). Biases start at 0.
    """

    INITS = ("he", "glorot", "sparse")

    def __init__(self, sizes, activation="relu", output="identity", init="he"):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise ShapeError(f"sizes must be a sequence of layer widths such as [2, 16, 1], got {sizes!r}")
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ShapeError(f"sizes must list at least two widths (input and output), got {sizes}")
        sizes = tuple(positive_int(f"sizes[{i}]", width) for i, width in enumerate(sizes))
        one_of("init", init, self.INITS)
        self.sizes = sizes
        hidden = len(sizes) - 2
        per_layer = not (isinstance(activation, str) or callable(activation))
        names = list(activation) if per_layer else [activation] * hidden
        if len(names) != hidden:
            raise ShapeError(f"activation lists {len(names)} activations, but the network has {hidden} "
                             "hidden layers: give one per hidden layer, or one name for all")
        #: The activation of every layer, hidden layers first, the output's last.
        self.activations = tuple(get_activation(name) for name in names) + (get_activation(output),)
        self.activation_names = tuple(name if isinstance(name, str) else None for name in names + [output])
        shared = None if per_layer else activation
        if per_layer and hidden and all(name == names[0] for name in names):
            shared = names[0]
        #: The hidden layers' activation when they share one (None where they differ).
        self.activation = None if shared is None else get_activation(shared)
        self.activation_name = shared if isinstance(shared, str) else None
        self.output = self.activations[-1]
        self.output_name = self.activation_names[-1]
        self.init_scheme = init
        self.layout = ParameterLayout(sizes)

    @property
    def layer_activation_names(self):
        """Every layer's activation by name (a callable's ``__name__`` where none was given), output last."""
        return [name or function.__name__ for name, function in zip(self.activation_names, self.activations)]

    def __repr__(self):
        hidden = self.layer_activation_names[:-1]
        act = hidden[0] if len(set(hidden)) == 1 else hidden if hidden else self.activation_name
        return f"MLP({list(self.sizes)}, activation={act!r}, num_params={self.num_params})"

    @property
    def num_params(self):
        """Length of the flat parameter vector theta."""
        return self.layout.num_params

    @property
    def input_dim(self):
        return self.sizes[0]

    @property
    def output_dim(self):
        return self.sizes[-1]

    @property
    def is_piecewise_linear(self):
        """True when every hidden and output activation is piecewise linear."""
        return all(name in PIECEWISE_LINEAR for name in self.activation_names)

    def init(self, seed=0):
        """A fresh float64 parameter vector of shape (num_params,), seeded."""
        rng = np.random.default_rng(random_seed("seed", seed))
        params = []
        for layer in self.layout:
            fan_in, fan_out = layer.weight_shape
            if self.init_scheme == "he":
                W = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
            elif self.init_scheme == "glorot":
                W = rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=(fan_in, fan_out))
            else:
                W = np.zeros((fan_in, fan_out))
                nonzero = min(SPARSE_INIT_CONNECTIONS, fan_in)
                for unit in range(fan_out):
                    rows = rng.choice(fan_in, size=nonzero, replace=False)
                    W[rows, unit] = rng.normal(size=nonzero)
            params.append((W, np.zeros(fan_out)))
        return self.layout.flatten(params)

    def check_inputs(self, X):
        """Raise ShapeError unless X has shape (n, input_dim)."""
        shape = np.shape(X)
        if len(shape) != 2 or shape[1] != self.input_dim:
            raise ShapeError(
                f"X has shape {shape}, but the model expects (n, {self.input_dim}): "
                "one example per row" + (" (use X.reshape(-1, 1) for 1-D inputs)" if len(shape) == 1 else "")
            )

    def forward(self, theta, X):
        """Network outputs, shape (n, output_dim), for inputs X of shape (n, input_dim)."""
        _, preactivations = self.forward_trace(theta, X)
        return self.output(preactivations[-1])

    def forward_trace(self, theta, X):
        """Each layer's input and pre-activation, as two lists (for teaching and inspection).

        ``inputs[l]`` has shape (n, fan_in) and ``preactivations[l] = inputs[l] @ W + b``
        has shape (n, fan_out); the network output is ``output(preactivations[-1])``.
        """
        self.check_inputs(X)
        inputs, preactivations = [], []
        h = X
        params = self.layout.unflatten(theta)
        for index, (W, b) in enumerate(params):
            inputs.append(h)
            z = anp.dot(h, W) + b
            preactivations.append(z)
            if index < len(params) - 1:
                h = self.activations[index](z)
        return inputs, preactivations
