"""mininn: second-order methods for ReLU networks, small enough to read.

Parameters are one flat float64 vector ``theta``; a :class:`~mininn.problem.Problem` binds a
model, a loss and data and gives values, gradients and curvature products.
"""

from . import activations, curvature, data, errors, linalg, losses, optim, reporting
from .nn import MLP, ParameterLayout
from .problem import Problem
from .train import History, fit

__all__ = [
    "MLP",
    "ParameterLayout",
    "Problem",
    "History",
    "fit",
    "activations",
    "curvature",
    "data",
    "errors",
    "linalg",
    "losses",
    "optim",
    "reporting",
]

__version__ = "0.1.0"
