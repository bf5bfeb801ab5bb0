"""Tests of mininn.optim.first_order: convergence on linear regression, exact updates, errors."""

import numpy as np
import pytest
from helpers import linear_regression

import mininn
from mininn.errors import DivergenceError, NonFiniteError
from mininn.optim import SGD, Adadelta, Adagrad, Adam, Momentum, Nesterov, Optimizer, RMSProp

# (optimizer, steps, tolerance on |theta - theta*|). The problem's Hessian has eigenvalues
# in [0.99, 2.75]; |theta_0 - theta*| is about 0.96.
CONVERGENCE = [
    (SGD(learning_rate=0.3), 200, 1e-8),
    (Momentum(learning_rate=0.05, momentum=0.9), 400, 1e-8),
    (Nesterov(learning_rate=0.05, momentum=0.9), 400, 1e-8),
    (Adagrad(learning_rate=0.5), 1000, 1e-8),
    # RMSProp with a constant learning rate ends in a ball of radius ~ learning_rate
    (RMSProp(learning_rate=1e-3), 2000, 3e-3),
    # Adadelta's limit step size is learning_rate * sqrt(eps) / sqrt(eps): keep it below 2 / 2.75
    (Adadelta(learning_rate=0.5), 1000, 1e-8),
    (Adam(learning_rate=0.05), 1000, 1e-8),
]


@pytest.mark.parametrize(("optimizer", "steps", "tolerance"), CONVERGENCE,
                         ids=[type(o).__name__ for o, _, _ in CONVERGENCE])
def test_reaches_least_squares_optimum(optimizer, steps, tolerance):
    problem, theta_star = linear_regression()
    assert np.linalg.norm(problem.grad(theta_star)) < 1e-12  # the reference is the optimum
    theta0 = np.zeros(problem.num_params)
    start = np.linalg.norm(theta0 - theta_star)
    history = mininn.fit(problem, optimizer, theta0, steps)
    distance = np.linalg.norm(history.theta - theta_star)
    assert distance <= tolerance
    assert distance <= start / 100
    assert history.loss[-1] < history.loss[0]
    assert problem.value(history.theta) == pytest.approx(problem.value(theta_star), abs=1e-4)


def test_rmsprop_ball_shrinks_with_learning_rate():
    problem, theta_star = linear_regression()
    theta0 = np.zeros(problem.num_params)
    radius = {lr: np.linalg.norm(mininn.fit(problem, RMSProp(lr), theta0, steps).theta - theta_star)
              for lr, steps in ((1e-2, 500), (1e-3, 2000))}
    assert radius[1e-3] < radius[1e-2] / 4


# ------------------------------------------------------------- exact updates


def setup(seed=0):
    problem, _ = linear_regression(seed=seed)
    theta = np.random.default_rng(seed + 1).standard_normal(problem.num_params)
    return problem, theta, problem.grad(theta)


def check_info(info, problem, theta):
    assert info["loss"] == pytest.approx(problem.value(theta), rel=1e-14)
    assert info["grad_norm"] == pytest.approx(np.linalg.norm(problem.grad(theta)), rel=1e-14)


def test_sgd_step():
    problem, theta, g = setup()
    optimizer = SGD(learning_rate=0.2)
    state = optimizer.init(theta)
    assert state == (0,) and state.step == 0
    before = theta.copy()
    new, state, info = optimizer.step(problem, theta, state)
    np.testing.assert_array_equal(theta, before)  # the input is not modified
    np.testing.assert_allclose(new, theta - 0.2 * g, rtol=1e-14)
    assert state.step == 1
    check_info(info, problem, theta)


@pytest.mark.parametrize("cls", [Momentum, Nesterov])
def test_momentum_steps(cls):
    problem, theta, g = setup()
    lr, m = 0.1, 0.7
    optimizer = cls(learning_rate=lr, momentum=m)
    state = optimizer.init(theta)
    np.testing.assert_array_equal(state.velocity, 0.0)
    theta1, state, info = optimizer.step(problem, theta, state)
    np.testing.assert_allclose(state.velocity, -lr * g, rtol=1e-14)
    first_update = -lr * g if cls is Momentum else -(1 + m) * lr * g
    np.testing.assert_allclose(theta1, theta + first_update, rtol=1e-14)
    check_info(info, problem, theta)
    v1 = state.velocity
    theta2, state, info = optimizer.step(problem, theta1, state)
    # both take the gradient, and report the loss, at the incoming theta1
    g1 = problem.grad(theta1)
    v2 = m * v1 - lr * g1
    np.testing.assert_allclose(state.velocity, v2, rtol=1e-13)
    np.testing.assert_allclose(theta2, theta1 + (v2 if cls is Momentum else m * v2 - lr * g1), rtol=1e-13)
    assert state.step == 2
    check_info(info, problem, theta1)


def test_nesterov_iterates_are_sutskevers_look_ahead_points():
    # Sutskever et al. (2013): v <- m v - lr grad(phi + m v), phi <- phi + v. Nesterov's
    # iterates are the points phi + m v where Sutskever's form takes its gradients.
    problem, theta, _ = setup(seed=3)
    lr, m = 0.05, 0.9
    optimizer = Nesterov(learning_rate=lr, momentum=m)
    state, ours = optimizer.init(theta), theta
    phi, v = theta.copy(), np.zeros_like(theta)
    for _ in range(20):
        ours, state, _ = optimizer.step(problem, ours, state)
        v = m * v - lr * problem.grad(phi + m * v)
        phi = phi + v
        np.testing.assert_allclose(ours, phi + m * v, rtol=1e-12, atol=1e-14)


def test_nesterov_differs_from_momentum():
    problem, theta, _ = setup()
    a = mininn.fit(problem, Momentum(0.1, 0.7), theta, 3).theta
    b = mininn.fit(problem, Nesterov(0.1, 0.7), theta, 3).theta
    assert np.max(np.abs(a - b)) > 1e-3


def test_adagrad_state_accumulates_squared_gradients():
    problem, theta, g = setup()
    lr, eps = 0.3, 1e-6
    optimizer = Adagrad(learning_rate=lr, eps=eps)
    state = optimizer.init(theta)
    np.testing.assert_array_equal(state.second_moment, 0.0)
    theta1, state, info = optimizer.step(problem, theta, state)
    np.testing.assert_allclose(state.second_moment, g**2, rtol=1e-14)
    np.testing.assert_allclose(theta1, theta - lr * g / (np.abs(g) + eps), rtol=1e-14)
    check_info(info, problem, theta)
    g1 = problem.grad(theta1)
    theta2, state, _ = optimizer.step(problem, theta1, state)
    np.testing.assert_allclose(state.second_moment, g**2 + g1**2, rtol=1e-14)
    np.testing.assert_allclose(theta2, theta1 - lr * g1 / (np.sqrt(g**2 + g1**2) + eps),
                               rtol=1e-13)


def test_rmsprop_state_is_a_running_average():
    problem, theta, g = setup()
    lr, decay, eps = 0.01, 0.8, 1e-7
    optimizer = RMSProp(learning_rate=lr, decay=decay, eps=eps)
    state = optimizer.init(theta)
    theta1, state, info = optimizer.step(problem, theta, state)
    second = (1 - decay) * g**2
    np.testing.assert_allclose(state.second_moment, second, rtol=1e-14)
    np.testing.assert_allclose(theta1, theta - lr * g / (np.sqrt(second) + eps), rtol=1e-14)
    check_info(info, problem, theta)
    g1 = problem.grad(theta1)
    _, state, _ = optimizer.step(problem, theta1, state)
    np.testing.assert_allclose(state.second_moment, decay * second + (1 - decay) * g1**2,
                               rtol=1e-14)


def test_adadelta_state_after_one_step():
    problem, theta, g = setup()
    lr, rho, eps = 0.7, 0.9, 1e-4
    optimizer = Adadelta(learning_rate=lr, decay=rho, eps=eps)
    state = optimizer.init(theta)
    assert state.second_moment is not state.update_moment
    theta1, state, info = optimizer.step(problem, theta, state)
    second = (1 - rho) * g**2
    update = -np.sqrt(eps) / np.sqrt(second + eps) * g
    np.testing.assert_allclose(state.second_moment, second, rtol=1e-14)
    np.testing.assert_allclose(state.update_moment, (1 - rho) * update**2, rtol=1e-14)
    np.testing.assert_allclose(theta1, theta + lr * update, rtol=1e-14)
    assert state.step == 1
    check_info(info, problem, theta)


def test_adam_state_and_bias_correction():
    problem, theta, g = setup()
    lr, b1, b2, eps = 0.01, 0.8, 0.99, 1e-6
    optimizer = Adam(learning_rate=lr, beta1=b1, beta2=b2, eps=eps)
    state = optimizer.init(theta)
    assert state.first_moment is not state.second_moment
    theta1, state, info = optimizer.step(problem, theta, state)
    np.testing.assert_allclose(state.first_moment, (1 - b1) * g, rtol=1e-14)
    np.testing.assert_allclose(state.second_moment, (1 - b2) * g**2, rtol=1e-14)
    # after one step the bias-corrected moments are g and g^2: a sign-like step
    np.testing.assert_allclose(theta1, theta - lr * g / (np.abs(g) + eps), rtol=1e-13)
    check_info(info, problem, theta)
    g1 = problem.grad(theta1)
    theta2, state, _ = optimizer.step(problem, theta1, state)
    m = b1 * (1 - b1) * g + (1 - b1) * g1
    s = b2 * (1 - b2) * g**2 + (1 - b2) * g1**2
    np.testing.assert_allclose(state.first_moment, m, rtol=1e-13)
    np.testing.assert_allclose(state.second_moment, s, rtol=1e-13)
    expected = theta1 - lr * (m / (1 - b1**2)) / (np.sqrt(s / (1 - b2**2)) + eps)
    np.testing.assert_allclose(theta2, expected, rtol=1e-12)
    assert state.step == 2


def test_optimizers_follow_the_protocol():
    for optimizer, _, _ in CONVERGENCE:
        assert isinstance(optimizer, Optimizer)
        assert type(optimizer).__name__ in repr(optimizer)
    with pytest.raises(NotImplementedError):
        Optimizer().step(None, np.zeros(2), Optimizer().init(np.zeros(2)))


# -------------------------------------------------------------------- errors


@pytest.mark.parametrize(("cls", "kwargs"), [
    (SGD, {"learning_rate": 0.0}),
    (SGD, {"learning_rate": -0.1}),
    (SGD, {"learning_rate": np.nan}),
    (Momentum, {"learning_rate": -1.0}),
    (Momentum, {"momentum": 1.0}),
    (Momentum, {"momentum": -0.1}),
    (Nesterov, {"momentum": 1.5}),
    (Adagrad, {"learning_rate": 0.0}),
    (Adagrad, {"eps": 0.0}),
    (RMSProp, {"decay": 1.0}),
    (RMSProp, {"eps": -1e-8}),
    (Adadelta, {"decay": -0.5}),
    (Adadelta, {"learning_rate": 0.0}),
    (Adadelta, {"eps": 0.0}),
    (Adam, {"beta1": 1.0}),
    (Adam, {"beta2": 1.0}),
    (Adam, {"beta2": -0.1}),
    (Adam, {"eps": 0.0}),
    (Adam, {"learning_rate": -1e-3}),
])
def test_invalid_hyperparameters_raise_value_error(cls, kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


def test_zero_momentum_and_decay_are_allowed():
    assert Momentum(momentum=0.0).momentum == 0.0
    assert RMSProp(decay=0.0).decay == 0.0
    assert Adam(beta1=0.0).beta1 == 0.0


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_huge_learning_rate_raises_divergence_error_with_finite_history():
    problem, _ = linear_regression()
    theta0 = np.zeros(problem.num_params)
    with pytest.raises(DivergenceError, match="lower the learning rate") as caught:
        mininn.fit(problem, SGD(learning_rate=1e3), theta0, steps=2000)
    error = caught.value
    assert isinstance(error, NonFiniteError)
    assert "loss at its incoming parameters is inf" in str(error)  # the first non-finite loss
    history = error.history
    assert 0 < history.steps < 2000
    assert np.all(np.isfinite(history.theta)) and np.isfinite(problem.value(history.theta))
    assert np.all(np.isfinite(history.loss))
    # history.theta is the parameters after the last completed step
    again = mininn.fit(problem, SGD(learning_rate=1e3), theta0, steps=history.steps)
    np.testing.assert_array_equal(again.theta, history.theta)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("cls", [SGD, Momentum, Nesterov])
def test_step_never_returns_non_finite_parameters(cls):
    problem, theta, _ = setup()
    optimizer = cls(learning_rate=1e308)
    with pytest.raises(NonFiniteError, match="non-finite parameters"):
        optimizer.step(problem, 100 * theta, optimizer.init(theta))


@pytest.mark.parametrize("make", [SGD, Adam, RMSProp])
@pytest.mark.parametrize("learning_rate", [0.0, -1.0, np.inf, np.nan])
def test_learning_rate_must_be_positive_and_finite(make, learning_rate):
    with pytest.raises(ValueError, match="learning_rate must be positive and finite"):
        make(learning_rate=learning_rate)
