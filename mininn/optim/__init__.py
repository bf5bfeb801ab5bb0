"""Optimizers sharing one protocol: ``init(theta) -> state`` and
``step(problem, theta, state) -> (theta, state, info)`` (see ``mininn.optim.base``)."""

from .base import Optimizer
from .first_order import SGD, Adadelta, Adagrad, Adam, Momentum, Nesterov, RMSProp
from .hessian_free import HessianFree, empirical_fisher_diagonal
from .kfac import FISHER_KINDS, KFAC, kfac_block, kfac_factors, kfac_relative_errors
from .lbfgs import LBFGS, two_loop_recursion, wolfe_line_search
from .newton import DampedNewton, GaussNewton, LevenbergMarquardt, Newton, SaddleFreeNewton

__all__ = [
    "Optimizer",
    "SGD", "Momentum", "Nesterov", "Adagrad", "RMSProp", "Adadelta", "Adam",
    "Newton", "LevenbergMarquardt", "DampedNewton", "SaddleFreeNewton", "GaussNewton",
    "HessianFree", "empirical_fisher_diagonal",
    "LBFGS", "two_loop_recursion", "wolfe_line_search",
    "KFAC", "FISHER_KINDS", "kfac_factors", "kfac_block", "kfac_relative_errors",
]
