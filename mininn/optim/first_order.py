"""First-order optimizers: gradient descent, momentum, and the diagonal adaptive methods.

They share one step (:class:`FirstOrder`): the gradient at the incoming theta, then
the method's update rule, a small function of the gradient and the state in the
manner of optax's ``update_fn``. Adagrad, RMSProp, Adadelta and Adam keep a running
``second_moment`` of the gradient in their state: a diagonal, gradient-based
stand-in for curvature that the book compares with the Gauss-Newton and Hessian
diagonals.
"""

from typing import NamedTuple

import numpy as np

from ..validation import in_unit_interval, norm, positive
from .base import Optimizer, StepInfo


class MomentumState(NamedTuple):
    step: int
    velocity: np.ndarray


class SecondMomentState(NamedTuple):
    step: int
    second_moment: np.ndarray


class AdadeltaState(NamedTuple):
    step: int
    second_moment: np.ndarray
    update_moment: np.ndarray


class AdamState(NamedTuple):
    step: int
    first_moment: np.ndarray
    second_moment: np.ndarray


class FirstOrder(Optimizer):
    """The shared step: ``theta <- theta + update`` with ``update, state = rule(g, state)``.

    ``info.step_size`` is the learning rate; ``loss_after`` is not evaluated (NaN).
    """

    divergence_hint = "lower the learning rate"

    def __init__(self, learning_rate):
        self.learning_rate = positive("learning_rate", learning_rate)

    def _step(self, problem, theta, state):
        loss, g = problem.value_and_grad(theta)
        # an overflow to inf or NaN is not warned about: Optimizer.step refuses it with a fix
        with np.errstate(over="ignore", invalid="ignore"):
            update, state = self.rule(g, state)
            new = theta + update
        return new, state, StepInfo(loss=loss, grad_norm=norm(g), step_size=self.learning_rate)

    def rule(self, g, state):
        """The update (shape (N,)) and the new state, from the gradient g at the incoming theta."""
        raise NotImplementedError


class SGD(FirstOrder):
    """Gradient descent ``theta <- theta - learning_rate * g``."""

    def __init__(self, learning_rate=0.1):
        super().__init__(learning_rate)

    def rule(self, g, state):
        return -self.learning_rate * g, state


class Momentum(FirstOrder):
    """Heavy ball: ``v <- momentum v - learning_rate g``, ``theta <- theta + v``."""

    def __init__(self, learning_rate=0.01, momentum=0.9):
        super().__init__(learning_rate)
        self.momentum = in_unit_interval("momentum", momentum)

    def init(self, theta):
        return MomentumState(0, np.zeros_like(theta, dtype=float))

    def rule(self, g, state):
        velocity = self.momentum * state.velocity - self.learning_rate * g
        return velocity, state._replace(velocity=velocity)


class Nesterov(Momentum):
    """Nesterov momentum with the gradient at the incoming theta (Bengio et al. 2013's form).

    Sutskever et al. (2013) take the gradient at the look-ahead point ``theta + momentum v``;
    writing the method in the look-ahead points themselves gives the same iterates with
    the gradient, and the reported loss, at the incoming theta:
    ``v <- momentum v - learning_rate g``, ``theta <- theta + momentum v - learning_rate g``
    (the form of PyTorch's and optax's ``nesterov=True``).
    """

    def rule(self, g, state):
        velocity, state = super().rule(g, state)
        return self.momentum * velocity - self.learning_rate * g, state


class Adagrad(FirstOrder):
    """Adagrad (Duchi et al. 2011): ``s <- s + g^2``, ``theta <- theta - lr g / (sqrt(s) + eps)``."""

    def __init__(self, learning_rate=0.1, eps=1e-10):
        super().__init__(learning_rate)
        self.eps = positive("eps", eps)

    def init(self, theta):
        return SecondMomentState(0, np.zeros_like(theta, dtype=float))

    def rule(self, g, state):
        second = state.second_moment + g**2
        return -self.learning_rate * g / (np.sqrt(second) + self.eps), state._replace(second_moment=second)


class RMSProp(FirstOrder):
    """RMSProp (Tieleman & Hinton 2012): ``s <- decay s + (1 - decay) g^2``, step lr g / (sqrt(s) + eps)."""

    def __init__(self, learning_rate=1e-3, decay=0.9, eps=1e-8):
        super().__init__(learning_rate)
        self.decay = in_unit_interval("decay", decay)
        self.eps = positive("eps", eps)

    def init(self, theta):
        return SecondMomentState(0, np.zeros_like(theta, dtype=float))

    def rule(self, g, state):
        second = self.decay * state.second_moment + (1 - self.decay) * g**2
        return -self.learning_rate * g / (np.sqrt(second) + self.eps), state._replace(second_moment=second)


class Adadelta(FirstOrder):
    """Adadelta (Zeiler 2012): RMSProp whose step size is the running RMS of past updates."""

    def __init__(self, learning_rate=1.0, decay=0.95, eps=1e-6):
        super().__init__(learning_rate)
        self.decay = in_unit_interval("decay", decay)
        self.eps = positive("eps", eps)

    def init(self, theta):
        zeros = np.zeros_like(theta, dtype=float)
        return AdadeltaState(0, zeros, zeros.copy())

    def rule(self, g, state):
        rho = self.decay
        second = rho * state.second_moment + (1 - rho) * g**2
        update = -np.sqrt(state.update_moment + self.eps) / np.sqrt(second + self.eps) * g
        update_moment = rho * state.update_moment + (1 - rho) * update**2
        return self.learning_rate * update, state._replace(second_moment=second, update_moment=update_moment)


class Adam(FirstOrder):
    """Adam (Kingma & Ba 2015) with bias-corrected first and second moments."""

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(learning_rate)
        self.beta1 = in_unit_interval("beta1", beta1)
        self.beta2 = in_unit_interval("beta2", beta2)
        self.eps = positive("eps", eps)

    def init(self, theta):
        zeros = np.zeros_like(theta, dtype=float)
        return AdamState(0, zeros, zeros.copy())

    def rule(self, g, state):
        t = state.step + 1
        first = self.beta1 * state.first_moment + (1 - self.beta1) * g
        second = self.beta2 * state.second_moment + (1 - self.beta2) * g**2
        first_hat = first / (1 - self.beta1**t)
        second_hat = second / (1 - self.beta2**t)
        update = -self.learning_rate * first_hat / (np.sqrt(second_hat) + self.eps)
        return update, state._replace(first_moment=first, second_moment=second)
