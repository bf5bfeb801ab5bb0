"""The protocol every mininn optimizer follows, and the record of one step.

``state = optimizer.init(theta)`` returns the method's state, a small immutable
``NamedTuple`` whose first field is the number of steps taken, and
``theta, state, info = optimizer.step(problem, theta, state)`` takes one step on
``problem`` (a :class:`mininn.problem.Problem`, possibly a minibatch) and returns
the new parameters, the new state and a :class:`StepInfo`. The incoming theta is
never modified, and no step returns non-finite parameters or starts from a non-finite
loss: it raises :class:`mininn.errors.NonFiniteError` naming the fix instead.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from ..errors import NonFiniteError
from ..validation import norm

NAN = float("nan")


@dataclass(frozen=True)
class StepInfo(Mapping):
    """What one optimizer step did. Read a field as ``info.loss`` or ``info["loss"]``.

    The common fields have one meaning for every optimizer; a method that has no such
    quantity reports NaN. A method's own quantities are in ``extras`` and are read by
    name too (``info["cg_iterations"]``); iterating over the info yields the common
    fields, then the extras.

    Attributes
    ----------
    loss : float
        The objective at the incoming theta, on the step's problem (batch).
    grad_norm : float
        The norm of the gradient there.
    loss_after : float
        The objective at the returned theta on the same problem (equal to ``loss`` when
        the step was rejected); NaN for methods that do not evaluate it (the
        first-order methods, which would need an extra forward pass).
    accepted : bool
        False when the step was rejected and theta returned unchanged.
    step_size : float
        The multiple of the method's direction that was taken: the learning rate of the
        first-order methods, a line search's or quadratic model's alpha, 1 for the
        (damped) Newton steps; 0 when the step was rejected.
    damping : float
        The damping lambda used by this step (NaN for undamped methods).
    rho : float
        The reduction ratio of the trial step, (actual loss change) / (change predicted
        by the method's quadratic model); NaN when it was not measured.
    extras : Mapping
        The method's own quantities (documented with each optimizer).
    """

    loss: float
    grad_norm: float
    loss_after: float = NAN
    accepted: bool = True
    step_size: float = NAN
    damping: float = NAN
    rho: float = NAN
    extras: Mapping = field(default_factory=dict)

    def __post_init__(self):
        for name in COMMON_FIELDS:
            value = getattr(self, name)
            object.__setattr__(self, name, bool(value) if name == "accepted" else float(value))
        object.__setattr__(self, "extras", MappingProxyType(dict(self.extras)))

    def __getitem__(self, key):
        if key in COMMON_FIELDS:
            return getattr(self, key)
        return self.extras[key]

    def __iter__(self):
        yield from COMMON_FIELDS
        yield from self.extras

    def __len__(self):
        return len(COMMON_FIELDS) + len(self.extras)


#: The fields every StepInfo has, in order.
COMMON_FIELDS = tuple(f.name for f in fields(StepInfo) if f.name != "extras")


class StepCount(NamedTuple):
    """The state of a method that carries nothing but the number of steps taken."""

    step: int


class Optimizer:
    """Base class: holds hyperparameters; a subclass implements ``init`` and ``_step``.

    :meth:`step` counts the steps in ``state.step`` and refuses non-finite parameters,
    so that ``_step`` holds only the method. ``divergence_hint`` is the fix an error
    names when a step overflows.
    """

    divergence_hint = "restart from the last good parameters with a smaller step"

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"

    def init(self, theta):
        """Initial state for parameters theta of shape (N,): a NamedTuple whose first field is ``step``.

        This default, :class:`~mininn.optim.base.StepCount`, suits methods that carry nothing between steps.
        """
        return StepCount(0)

    def step(self, problem, theta, state):
        """One update: returns (new theta, new state, :class:`StepInfo`)."""
        new_theta, new_state, info = self._step(problem, theta, state)
        if not (np.isfinite(info.loss) and np.isfinite(info.grad_norm)):
            raise NonFiniteError(
                f"the loss at its incoming parameters is {info.loss:g} and the gradient norm "
                f"{info.grad_norm:g} (|theta| = {norm(theta):.3g}): start from parameters with a "
                f"finite loss; {self.divergence_hint}")
        if not np.all(np.isfinite(new_theta)):
            raise NonFiniteError(
                f"the {type(self).__name__} update produced non-finite parameters (|theta| = "
                f"{norm(theta):.3g} before the step); {self.divergence_hint}")
        return new_theta, new_state._replace(step=state.step + 1), info

    def _step(self, problem, theta, state):
        """The method: (new theta, new state with the old step count, StepInfo)."""
        raise NotImplementedError
