"""First-order optimizers: gradient descent, momentum, and the diagonal adaptive methods.

Adagrad, RMSProp, Adadelta and Adam keep a running ``second_moment`` of the
gradient in their state: a diagonal, gradient-based stand-in for curvature that
the book compares with the Gauss-Newton and Hessian diagonals.
"""

import numpy as np

from .base import Optimizer, check_finite_update, in_unit_interval, positive

LOWER_LR = "lower the learning rate"

#: Floating-point state for the update arithmetic: an overflow to inf or NaN is not
#: warned about here because check_finite_update turns it into a NonFiniteError.
QUIET = {"over": "ignore", "invalid": "ignore"}


def _value_and_grad(problem, theta):
    loss, gradient = problem.value_and_grad(theta)
    return loss, gradient, {"loss": loss, "grad_norm": float(np.linalg.norm(gradient))}


class SGD(Optimizer):
    """Gradient descent ``theta <- theta - learning_rate * g``."""

    def __init__(self, learning_rate=0.1):
        self.learning_rate = positive("learning_rate", learning_rate)

    def step(self, problem, theta, state):
        _, g, info = _value_and_grad(problem, theta)
        with np.errstate(**QUIET):
            new = theta - self.learning_rate * g
        new = check_finite_update(theta, new, LOWER_LR)
        return new, {"step": state["step"] + 1}, info


class Momentum(Optimizer):
    """Heavy ball: ``v <- momentum v - learning_rate g``, ``theta <- theta + v``."""

    def __init__(self, learning_rate=0.01, momentum=0.9):
        self.learning_rate = positive("learning_rate", learning_rate)
        self.momentum = in_unit_interval("momentum", momentum)

    def init(self, theta):
        return {"step": 0, "velocity": np.zeros_like(theta, dtype=float)}

    def step(self, problem, theta, state):
        _, g, info = _value_and_grad(problem, theta)
        with np.errstate(**QUIET):
            velocity = self.momentum * state["velocity"] - self.learning_rate * g
            new = theta + velocity
        new = check_finite_update(theta, new, LOWER_LR)
        return new, {"step": state["step"] + 1, "velocity": velocity}, info


class Nesterov(Momentum):
    """Nesterov momentum (Sutskever et al. 2013 form): the gradient is taken at theta + momentum v.

    ``info['loss']`` is the loss at that look-ahead point.
    """

    def step(self, problem, theta, state):
        _, g, info = _value_and_grad(problem, theta + self.momentum * state["velocity"])
        with np.errstate(**QUIET):
            velocity = self.momentum * state["velocity"] - self.learning_rate * g
            new = theta + velocity
        new = check_finite_update(theta, new, LOWER_LR)
        return new, {"step": state["step"] + 1, "velocity": velocity}, info


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011): ``s <- s + g^2``, ``theta <- theta - lr g / (sqrt(s) + eps)``."""

    def __init__(self, learning_rate=0.1, eps=1e-10):
        self.learning_rate = positive("learning_rate", learning_rate)
        self.eps = positive("eps", eps)

    def init(self, theta):
        return {"step": 0, "second_moment": np.zeros_like(theta, dtype=float)}

    def step(self, problem, theta, state):
        _, g, info = _value_and_grad(problem, theta)
        with np.errstate(**QUIET):
            second = state["second_moment"] + g**2
            new = theta - self.learning_rate * g / (np.sqrt(second) + self.eps)
        new = check_finite_update(theta, new, LOWER_LR)
        return new, {"step": state["step"] + 1, "second_moment": second}, info


class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton 2012): ``s <- decay s + (1 - decay) g^2``, step ``lr g / (sqrt(s) + eps)``.
    """

    def __init__(self, learning_rate=1e-3, decay=0.9, eps=1e-8):
        self.learning_rate = positive("learning_rate", learning_rate)
        self.decay = in_unit_interval("decay", decay)
        self.eps = positive("eps", eps)

    def init(self, theta):
        return {"step": 0, "second_moment": np.zeros_like(theta, dtype=float)}

    def step(self, problem, theta, state):
        _, g, info = _value_and_grad(problem, theta)
        with np.errstate(**QUIET):
            second = self.decay * state["second_moment"] + (1 - self.decay) * g**2
            new = theta - self.learning_rate * g / (np.sqrt(second) + self.eps)
        new = check_finite_update(theta, new, LOWER_LR)
        return new, {"step": state["step"] + 1, "second_moment": second}, info


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012): RMSProp whose step size is the running RMS of past updates."""

    def __init__(self, learning_rate=1.0, decay=0.95, eps=1e-6):
        self.learning_rate = positive("learning_rate", learning_rate)
        self.decay = in_unit_interval("decay", decay)
        self.eps = positive("eps", eps)

    def init(self, theta):
        zeros = np.zeros_like(theta, dtype=float)
        return {"step": 0, "second_moment": zeros, "update_moment": zeros.copy()}

    def step(self, problem, theta, state):
        _, g, info = _value_and_grad(problem, theta)
        rho = self.decay
        with np.errstate(**QUIET):
            second = rho * state["second_moment"] + (1 - rho) * g**2
            update = -np.sqrt(state["update_moment"] + self.eps) / np.sqrt(second + self.eps) * g
            update_moment = rho * state["update_moment"] + (1 - rho) * update**2
            new = theta + self.learning_rate * update
        new = check_finite_update(theta, new, LOWER_LR)
        state = {"step": state["step"] + 1, "second_moment": second, "update_moment": update_moment}
        return new, state, info


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias-corrected first and second moments."""

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.learning_rate = positive("learning_rate", learning_rate)
        self.beta1 = in_unit_interval("beta1", beta1)
        self.beta2 = in_unit_interval("beta2", beta2)
        self.eps = positive("eps", eps)

    def init(self, theta):
        zeros = np.zeros_like(theta, dtype=float)
        return {"step": 0, "first_moment": zeros, "second_moment": zeros.copy()}

    def step(self, problem, theta, state):
        _, g, info = _value_and_grad(problem, theta)
        t = state["step"] + 1
        with np.errstate(**QUIET):
            first = self.beta1 * state["first_moment"] + (1 - self.beta1) * g
            second = self.beta2 * state["second_moment"] + (1 - self.beta2) * g**2
            first_hat = first / (1 - self.beta1**t)
            second_hat = second / (1 - self.beta2**t)
            new = theta - self.learning_rate * first_hat / (np.sqrt(second_hat) + self.eps)
        new = check_finite_update(theta, new, LOWER_LR)
        return new, {"step": t, "first_moment": first, "second_moment": second}, info
