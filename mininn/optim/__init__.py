"""Optimizers sharing one protocol: ``init(theta) -> state`` and
``step(problem, theta, state) -> (theta, state, info)`` (see ``mininn.optim.base``)."""

from .base import Optimizer
from .first_order import SGD, Adadelta, Adagrad, Adam, Momentum, Nesterov, RMSProp

__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "Adagrad", "RMSProp", "Adadelta", "Adam"]
