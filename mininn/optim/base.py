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
    """Validate a positive hyperparameter and return it as a float."""
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


def in_unit_interval(name, value):
    """Validate a decay/momentum coefficient in [0, 1) and return it as a float."""
    if not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return float(value)
