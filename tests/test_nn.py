"""Tests of mininn.nn: the flat parameter layout, initialisation and the forward pass."""

import numpy as np
import pytest
from autograd import grad
from helpers import fd_grad

from mininn import MLP, ParameterLayout
from mininn.activations import ACTIVATIONS
from mininn.errors import ArgumentError, ShapeError, UnknownNameError
from mininn.nn import SPARSE_INIT_CONNECTIONS

SIZES = [(3, 1), (3, 5, 2), (4, 6, 5, 3), (2, 7, 7, 7, 1)]


def numpy_forward(theta, X, sizes, act, out=lambda z: z):
    """An independent forward pass: walks theta with its own offsets."""
    h, offset = X, 0
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = theta[offset:offset + fan_in * fan_out].reshape(fan_in, fan_out)
        offset += fan_in * fan_out
        b = theta[offset:offset + fan_out]
        offset += fan_out
        z = h @ W + b
        h = act(z) if index < len(sizes) - 2 else out(z)
    assert offset == len(theta)
    return h


# ------------------------------------------------------------------------ layout


@pytest.mark.parametrize("sizes", SIZES)
def test_num_params_formula(sizes):
    expected = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    assert MLP(sizes).num_params == expected
    assert ParameterLayout(sizes).num_params == expected


@pytest.mark.parametrize("sizes", SIZES)
def test_layout_slices_tile_theta_without_gaps(sizes):
    layout = ParameterLayout(sizes)
    assert len(layout) == len(sizes) - 1
    covered = np.zeros(layout.num_params, dtype=int)
    position = 0
    for index, layer in enumerate(layout):
        assert layer.index == index
        assert layer.weight_shape == (sizes[index], sizes[index + 1])
        assert (layer.fan_in, layer.fan_out) == layer.weight_shape
        assert layer.weight.start == position
        assert layer.weight.stop - layer.weight.start == layer.fan_in * layer.fan_out
        assert layer.bias.start == layer.weight.stop
        assert layer.bias.stop - layer.bias.start == layer.fan_out
        assert layer.params == slice(layer.weight.start, layer.bias.stop)
        position = layer.bias.stop
        covered[layer.weight] += 1
        covered[layer.bias] += 1
    assert position == layout.num_params
    np.testing.assert_array_equal(covered, 1)  # every index exactly once


def test_layout_boundaries():
    layout = ParameterLayout([3, 5, 4, 2])
    assert layout.boundaries == [0, 20, 44, 54]
    assert layout.boundaries[-1] == layout.num_params


@pytest.mark.parametrize("sizes", SIZES)
def test_unflatten_then_flatten_is_exact(sizes):
    layout = ParameterLayout(sizes)
    theta = np.random.default_rng(0).standard_normal(layout.num_params)
    params = layout.unflatten(theta)
    assert len(params) == len(layout)
    for layer, (W, b) in zip(layout, params):
        assert W.shape == layer.weight_shape and b.shape == (layer.fan_out,)
        np.testing.assert_array_equal(W.ravel(), theta[layer.weight])  # row-major
    back = layout.flatten(params)
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, theta)


@pytest.mark.parametrize("sizes", SIZES)
def test_flatten_then_unflatten_is_exact(sizes):
    rng = np.random.default_rng(1)
    layout = ParameterLayout(sizes)
    params = [(rng.standard_normal((a, b)), rng.standard_normal(b))
              for a, b in zip(sizes[:-1], sizes[1:])]
    theta = layout.flatten(params)
    assert theta.shape == (layout.num_params,)
    for (W, b), (W2, b2) in zip(params, layout.unflatten(theta)):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


def test_unflatten_gives_views_in_the_documented_order():
    layout = ParameterLayout([2, 3, 1])
    theta = np.arange(13.0)
    (W1, b1), (W2, b2) = layout.unflatten(theta)
    np.testing.assert_array_equal(W1, [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(b1, [6, 7, 8])
    np.testing.assert_array_equal(W2, [[9], [10], [11]])
    np.testing.assert_array_equal(b2, [12])


def test_flatten_rejects_wrong_shapes_and_counts():
    layout = ParameterLayout([3, 2, 1])
    good = [(np.zeros((3, 2)), np.zeros(2)), (np.zeros((2, 1)), np.zeros(1))]
    layout.flatten(good)
    with pytest.raises(ShapeError):
        layout.flatten(good[:1])
    with pytest.raises(ShapeError):
        layout.flatten([(np.zeros((2, 3)), np.zeros(2)), good[1]])
    with pytest.raises(ShapeError):
        layout.flatten([good[0], (np.zeros((2, 1)), np.zeros(2))])


@pytest.mark.parametrize("bad", [np.zeros(12), np.zeros(14), np.zeros((13, 1)), np.zeros((1, 13))])
def test_unflatten_rejects_wrong_theta(bad):
    with pytest.raises(ShapeError, match="13"):
        ParameterLayout([2, 3, 1]).unflatten(bad)


# ---------------------------------------------------------------- initialisation


@pytest.mark.parametrize("init", MLP.INITS)
def test_init_shape_dtype_and_determinism(init):
    model = MLP([6, 20, 4], init=init)
    theta = model.init(seed=3)
    assert theta.shape == (model.num_params,) and theta.dtype == np.float64
    np.testing.assert_array_equal(theta, model.init(seed=3))
    assert not np.array_equal(theta, model.init(seed=4))
    for W, b in model.layout.unflatten(theta):
        np.testing.assert_array_equal(b, 0.0)
        assert np.any(W != 0)


@pytest.mark.parametrize(("init", "variance"), [("he", lambda a, b: 2 / a),
                                                ("glorot", lambda a, b: 2 / (a + b))])
def test_init_weight_variance(init, variance):
    model = MLP([400, 300, 50], init=init)
    for layer, (W, _) in zip(model.layout, model.layout.unflatten(model.init(seed=0))):
        expected = variance(layer.fan_in, layer.fan_out)
        # relative standard error of a sample variance of m normals: sqrt(2 / m) <= 2%
        assert np.var(W) == pytest.approx(expected, rel=0.05)
        assert abs(np.mean(W)) < 4 * np.sqrt(expected / W.size)


def test_he_and_glorot_differ_as_documented():
    # the same seed draws the same normals, scaled by the two standard deviations
    he, glorot = MLP([10, 30], init="he").init(0), MLP([10, 30], init="glorot").init(0)
    weights = slice(0, 300)
    np.testing.assert_allclose(glorot[weights] / he[weights], np.sqrt(10 / 40), rtol=1e-12)


def test_sparse_init_has_min_15_fan_in_nonzeros_per_unit():
    model = MLP([10, 40, 30, 3], init="sparse")
    theta = model.init(seed=5)
    weights = []
    for layer, (W, _) in zip(model.layout, model.layout.unflatten(theta)):
        nonzero_per_unit = np.count_nonzero(W, axis=0)
        assert nonzero_per_unit.shape == (layer.fan_out,)
        np.testing.assert_array_equal(nonzero_per_unit, min(SPARSE_INIT_CONNECTIONS, layer.fan_in))
        weights.append(W[W != 0])
    assert SPARSE_INIT_CONNECTIONS == 15
    weights = np.concatenate(weights)
    # the nonzero weights are standard normal
    assert np.var(weights) == pytest.approx(1.0, rel=0.2)


def test_sparse_init_picks_different_units():
    W = MLP([100, 50], init="sparse").layout.unflatten(MLP([100, 50], init="sparse").init(0))[0][0]
    patterns = {tuple(np.flatnonzero(W[:, unit])) for unit in range(50)}
    assert len(patterns) == 50


# ------------------------------------------------------------------- forward pass


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("sizes", SIZES)
def test_forward_matches_numpy_forward(sizes, activation):
    rng = np.random.default_rng(2)
    model = MLP(sizes, activation=activation)
    theta = rng.standard_normal(model.num_params)
    X = rng.standard_normal((7, sizes[0]))
    act = ACTIVATIONS[activation]
    out = model.forward(theta, X)
    assert out.shape == (7, sizes[-1])
    np.testing.assert_allclose(out, numpy_forward(theta, X, sizes, act), rtol=1e-12, atol=1e-12)


def test_forward_with_output_activation_and_hand_written_relu():
    rng = np.random.default_rng(3)
    sizes = [3, 4, 2]
    model = MLP(sizes, activation="relu", output="sigmoid")
    theta = rng.standard_normal(model.num_params)
    X = rng.standard_normal((5, 3))
    expected = numpy_forward(theta, X, sizes, lambda z: np.maximum(z, 0),
                             lambda z: 1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(model.forward(theta, X), expected, rtol=1e-12)


def test_forward_with_callable_activation():
    rng = np.random.default_rng(4)
    model = MLP([2, 3, 1], activation=lambda z: z**2)
    theta, X = rng.standard_normal(model.num_params), rng.standard_normal((4, 2))
    np.testing.assert_allclose(model.forward(theta, X),
                               numpy_forward(theta, X, [2, 3, 1], np.square), rtol=1e-12)
    assert model.activation_name is None and "num_params=13" in repr(model)


def test_forward_trace_is_consistent_with_forward():
    rng = np.random.default_rng(5)
    model = MLP([3, 5, 4, 2], activation="tanh", output="sigmoid")
    theta, X = rng.standard_normal(model.num_params), rng.standard_normal((6, 3))
    inputs, preactivations = model.forward_trace(theta, X)
    assert len(inputs) == len(preactivations) == 3
    np.testing.assert_array_equal(inputs[0], X)
    for index, (layer, (W, b)) in enumerate(zip(model.layout, model.layout.unflatten(theta))):
        assert inputs[index].shape == (6, layer.fan_in)
        assert preactivations[index].shape == (6, layer.fan_out)
        np.testing.assert_allclose(preactivations[index], inputs[index] @ W + b, rtol=1e-14)
        if index > 0:
            np.testing.assert_allclose(inputs[index], np.tanh(preactivations[index - 1]))
    np.testing.assert_allclose(model.forward(theta, X), ACTIVATIONS["sigmoid"](preactivations[-1]))


@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus", "leaky_relu", "gelu"])
def test_gradient_of_forward_matches_finite_differences(activation):
    rng = np.random.default_rng(6)
    model = MLP([3, 6, 5, 2], activation=activation)
    theta, X = rng.standard_normal(model.num_params), rng.standard_normal((8, 3))
    R = rng.standard_normal((8, 2))

    def scalar(t):
        return np.sum(model.forward(t, X) * R)

    np.testing.assert_allclose(grad(scalar)(theta), fd_grad(scalar, theta), rtol=1e-6, atol=1e-7)


def test_is_piecewise_linear():
    assert MLP([2, 3, 1], activation="relu").is_piecewise_linear
    assert MLP([2, 3, 1], activation="leaky_relu").is_piecewise_linear
    assert MLP([2, 3, 1], activation="identity").is_piecewise_linear
    assert not MLP([2, 3, 1], activation="tanh").is_piecewise_linear
    assert not MLP([2, 3, 1], activation="relu", output="sigmoid").is_piecewise_linear
    assert not MLP([2, 3, 1], activation=lambda z: z).is_piecewise_linear


def test_model_properties():
    model = MLP([3, 5, 2])
    assert (model.input_dim, model.output_dim, model.sizes) == (3, 2, (3, 5, 2))
    assert repr(model) == "MLP([3, 5, 2], activation='relu', num_params=32)"


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize("length", [31, 33, 0])
def test_forward_rejects_theta_of_wrong_length(length):
    model = MLP([3, 5, 2])
    with pytest.raises(ShapeError, match="32 parameters"):
        model.forward(np.zeros(length), np.zeros((4, 3)))


def test_forward_rejects_matrix_theta():
    with pytest.raises(ShapeError):
        MLP([3, 5, 2]).forward(np.zeros((32, 1)), np.zeros((4, 3)))


@pytest.mark.parametrize("shape", [(4, 2), (4, 4), (3,), (4, 3, 1), ()])
def test_forward_rejects_inputs_of_wrong_shape(shape):
    model = MLP([3, 5, 2])
    with pytest.raises(ShapeError, match=r"\(n, 3\)"):
        model.forward(model.init(0), np.zeros(shape))


def test_one_dimensional_inputs_get_a_reshape_hint():
    model = MLP([1, 5, 1])
    with pytest.raises(ShapeError, match="reshape"):
        model.forward(model.init(0), np.zeros(4))
    assert model.forward(model.init(0), np.zeros(4).reshape(-1, 1)).shape == (4, 1)


def test_unknown_init_and_activation_raise():
    with pytest.raises(UnknownNameError, match="init"):
        MLP([3, 2], init="xavier")
    with pytest.raises(UnknownNameError, match="activation"):
        MLP([3, 2], activation="swish")
    with pytest.raises(UnknownNameError, match="activation"):
        MLP([3, 2], output="softmax")


@pytest.mark.parametrize("sizes", [[3], []])
def test_fewer_than_two_widths_raise(sizes):
    with pytest.raises(ShapeError, match="at least two widths"):
        MLP(sizes)


@pytest.mark.parametrize("sizes, index", [([3, 0, 2], 1), ([3, -1], 1), ([0, 2], 0), ([2, 2.7, 1], 1),
                                          ([2, "3", 1], 1), ([2, True, 1], 1)])
def test_widths_must_be_positive_integers(sizes, index):
    with pytest.raises(ArgumentError, match=rf"sizes\[{index}\] must be a positive integer"):
        MLP(sizes)


def test_one_activation_per_hidden_layer():
    # Martens' autoencoder: logistic hidden units around a linear code layer.
    model = MLP([6, 5, 2, 5, 6], activation=["sigmoid", "identity", "sigmoid"])
    theta = model.init(seed=0)
    X = np.random.default_rng(0).standard_normal((4, 6))
    W = model.layout.unflatten(theta)
    h1 = 1 / (1 + np.exp(-(X @ W[0][0] + W[0][1])))
    code = h1 @ W[1][0] + W[1][1]  # linear
    h3 = 1 / (1 + np.exp(-(code @ W[2][0] + W[2][1])))
    np.testing.assert_allclose(model.forward(theta, X), h3 @ W[3][0] + W[3][1], rtol=1e-12)
    assert model.activation is None and model.activation_name is None and not model.is_piecewise_linear
    assert "['sigmoid', 'identity', 'sigmoid']" in repr(model)
    assert MLP([2, 3, 3, 1], activation=["relu", "relu"]).activation_name == "relu"
    assert MLP([2, 3, 1], activation=["relu"]).is_piecewise_linear
    with pytest.raises(ShapeError, match="one per hidden layer"):
        MLP([2, 3, 3, 1], activation=["relu"])
