"""The protocol every mininn optimizer follows.

``state = optimizer.init(theta)`` prepares whatever the method carries between
steps, and ``theta, state, info = optimizer.step(problem, theta, state)`` takes
one step on ``problem`` (a :class:`mininn.problem.Problem`, possibly a minibatch).
``info`` is a dict with at least ``loss`` (the objective at the incoming theta)
and ``grad_norm`` (the norm of its gradient); methods add their own entries.
No step returns non-finite parameters: it raises
:class:`mininn.errors.NonFiniteError` naming the cause instead.
"""

import numpy as np

from ..errors import NonFiniteError


class Optimizer:
    """Base class: holds hyperparameters; subclasses implement ``init`` and ``step``."""

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"

    def init(self, theta):
        """Initial state for parameters theta of shape (N,); a dict."""
        return {"step": 0}

    def step(self, problem, theta, state):
        """One update: returns (new theta, new state, info dict)."""
        raise NotImplementedError


def check_finite_update(theta, new_theta, hint):
    """Return new_theta, or raise NonFiniteError naming ``hint`` as the fix."""
    if not np.all(np.isfinite(new_theta)):
        raise NonFiniteError(
            f"the update produced non-finite parameters (|theta| = {np.linalg.norm(theta):.3g} "
            f"before the step); {hint}"
        )
    return new_theta


def positive(name, value):
    """Validate a positive, finite hyperparameter and return it as a float."""
    if not 0 < value < np.inf:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def in_unit_interval(name, value):
    """Validate a decay/momentum coefficient in [0, 1) and return it as a float."""
    if not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return float(value)


#: Levenberg-Marquardt constants of Martens (2010): the damping grows by DAMPING_INCREASE
#: when rho < RHO_LOW (or the step was rejected) and shrinks by DAMPING_DECREASE when rho > RHO_HIGH.
RHO_LOW, RHO_HIGH, DAMPING_INCREASE, DAMPING_DECREASE = 0.25, 0.75, 1.5, 2.0 / 3.0

#: Default bounds of an adapted damping lambda.
DAMPING_RANGE = (1e-8, 1e8)


def levenberg_marquardt(damping, rho, bounds=DAMPING_RANGE):
    """The next damping after a step whose reduction ratio is rho.

    rho is (actual loss change) / (change predicted by the quadratic model); pass
    NaN for a rejected step. The damping is multiplied by 3/2 when rho < 1/4 or
    rho is NaN, by 2/3 when rho > 3/4, and clipped to ``bounds``.
    """
    if not rho >= RHO_LOW:
        damping *= DAMPING_INCREASE
    elif rho > RHO_HIGH:
        damping *= DAMPING_DECREASE
    return float(min(max(damping, bounds[0]), bounds[1]))


def trial_loss(value, trial):
    """``value(trial)``, or infinity where trial or the loss is not finite (a step to reject)."""
    if not np.all(np.isfinite(trial)):
        return np.inf
    with np.errstate(over="ignore", invalid="ignore"):
        loss = value(trial)
    return loss if np.isfinite(loss) else np.inf
