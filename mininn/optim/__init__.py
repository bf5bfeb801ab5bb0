"""Optimizers sharing one protocol: ``init(theta) -> state`` and
``step(problem, theta, state) -> (theta, state, info)`` with ``info`` a
:class:`~mininn.optim.base.StepInfo` (see :mod:`mininn.optim.base`)."""

from .base import Optimizer, StepCount, StepInfo
from .first_order import SGD, Adadelta, Adagrad, Adam, FirstOrder, Momentum, Nesterov, RMSProp
from .hessian_free import HessianFree
from .kfac import KFAC
from .lbfgs import LBFGS, two_loop_recursion, wolfe_line_search
from .natural_gradient import NaturalGradient
from .newton import DampedNewton, GaussNewton, LevenbergMarquardt, Newton, SaddleFreeNewton
from .shampoo import Shampoo
from .trust_region import TrustRegion

__all__ = [
    "Optimizer", "StepInfo", "StepCount",
    "FirstOrder", "SGD", "Momentum", "Nesterov", "Adagrad", "RMSProp", "Adadelta", "Adam",
    "Newton", "LevenbergMarquardt", "DampedNewton", "SaddleFreeNewton", "GaussNewton",
    "HessianFree",
    "LBFGS", "two_loop_recursion", "wolfe_line_search",
    "KFAC", "Shampoo",
    "TrustRegion", "NaturalGradient",
]
