"""One conformance test of the optimizer protocol, run over every optimizer in mininn.optim.__all__.

Each optimizer, built with its defaults, takes a few steps on a small tanh network (its
Hessian is non-singular, so pure Newton can step too) and must: return finite parameters,
a StepInfo with every common field and the documented meaning of loss, grad_norm and
accepted; leave the incoming theta untouched; count at least one evaluation per step; and,
on a problem where every trial point looks worse, either reject the step and keep theta or
be a method that never rejects.
"""

import inspect

import numpy as np
import pytest

from mininn import MLP, Problem, optim
from mininn.optim.base import COMMON_FIELDS, StepCount, StepInfo

#: Every concrete optimizer class the package exports.
OPTIMIZERS = [
    obj for name in optim.__all__
    if inspect.isclass(obj := getattr(optim, name)) and issubclass(obj, optim.Optimizer)
    and obj not in (optim.Optimizer, optim.FirstOrder, optim.LevenbergMarquardt)
]

#: Methods that take every step they compute (no trial evaluation, nothing to reject).
NEVER_REJECT = (optim.FirstOrder, optim.Newton)


def small_problem(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((24, 3))
    Y = np.tanh(X[:, :2] - X[:, 1:]) + 0.1 * rng.standard_normal((24, 2))
    model = MLP([3, 5, 2], activation="tanh")
    return Problem(model, "mse", X, Y), model.init(seed)


class EverywhereWorse(Problem):
    """Reports the start's loss plus 1 at every other point: any trial step must be rejected."""

    def __init__(self, problem, start):
        super().__init__(problem.model, problem.loss, problem.X, problem.Y)
        self.start, self.start_loss = start, problem.value(start)

    def _reported(self, theta, value):
        return value if np.array_equal(theta, self.start) else self.start_loss + 1.0

    def value(self, theta):
        return self._reported(theta, super().value(theta))

    def value_and_grad(self, theta):
        value, gradient = super().value_and_grad(theta)
        return self._reported(theta, value), gradient


def test_every_exported_optimizer_is_covered():
    names = {cls.__name__ for cls in OPTIMIZERS}
    assert {"SGD", "Adam", "Newton", "GaussNewton", "HessianFree", "LBFGS", "KFAC"} <= names


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda cls: cls.__name__)
def test_protocol(cls):
    problem, theta = small_problem()
    optimizer = cls()
    state = optimizer.init(theta)
    assert isinstance(state, tuple) and state.step == 0 and state._fields[0] == "step"
    for step in range(3):
        before, counted = theta.copy(), sum(problem.counts.values())
        new, state, info = optimizer.step(problem, theta, state)
        np.testing.assert_array_equal(theta, before)  # the input is never modified
        assert new is not theta or not info.accepted
        assert np.all(np.isfinite(new)) and new.shape == theta.shape
        assert state.step == step + 1
        assert sum(problem.counts.values()) > counted
        assert isinstance(info, StepInfo) and tuple(info)[:len(COMMON_FIELDS)] == COMMON_FIELDS
        assert info.loss == pytest.approx(problem.value(theta), rel=1e-12)
        assert info.grad_norm == pytest.approx(np.linalg.norm(problem.grad(theta)), rel=1e-12)
        assert info["loss"] == info.loss and all(key in info for key in info.extras)
        if not np.isnan(info.loss_after):
            assert info.loss_after == pytest.approx(problem.value(new), rel=1e-12)
        if info.accepted:
            assert info.step_size > 0
        else:
            np.testing.assert_array_equal(new, theta)
        theta = new


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda cls: cls.__name__)
def test_a_worse_trial_point_is_rejected_and_theta_kept(cls):
    problem, theta = small_problem(seed=1)
    worse = EverywhereWorse(problem, theta)
    optimizer = cls()
    new, state, info = optimizer.step(worse, theta, optimizer.init(theta))
    if issubclass(cls, NEVER_REJECT):
        assert info.accepted
        return
    assert not info.accepted and info.step_size == 0 and info.loss_after == info.loss
    np.testing.assert_array_equal(new, theta)
    assert state.step == 1


def test_step_info_reads_like_a_mapping():
    info = StepInfo(loss=1.0, grad_norm=2.0, extras={"cg_iterations": 3})
    assert info["cg_iterations"] == 3 and "cg_iterations" in info and "other" not in info
    assert np.isnan(info.loss_after) and np.isnan(info["rho"]) and info.accepted
    assert dict(info)["grad_norm"] == 2.0 and len(info) == len(COMMON_FIELDS) + 1
    with pytest.raises(KeyError):
        info["other"]
    with pytest.raises(AttributeError):
        info.loss = 0.0  # immutable
    assert StepCount(0)._replace(step=1).step == 1
