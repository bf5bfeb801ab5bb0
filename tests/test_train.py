"""Tests of mininn.fit and History: records, counts, callbacks, minibatches, edge cases."""

import itertools

import numpy as np
import pytest
from helpers import random_problem

import mininn
from mininn.errors import CurvatureError, DivergenceError, NonFiniteError, ShapeError
from mininn.optim import KFAC, SGD, Adam, HessianFree, Optimizer, StepInfo
from mininn.problem import EVALUATION_KINDS
from mininn.train import History


class Frozen(Optimizer):
    """Evaluates the gradient and never moves: history.loss is then the loss at one theta."""

    def _step(self, problem, theta, state):
        loss, g = problem.value_and_grad(theta)
        return theta, state, StepInfo(loss=loss, grad_norm=np.linalg.norm(g))


class Curious(SGD):
    """SGD that also asks for one Hessian- and two Gauss-Newton-vector products per step."""

    def step(self, problem, theta, state):
        problem.hvp(theta, theta)
        problem.ggn_vp(theta, theta)
        problem.ggn_vp(theta, theta)
        return super().step(problem, theta, state)


class JumpsAt(SGD):
    """SGD that moves to ``theta * 1e200`` (finite, with an infinite loss) at step ``jump``, then
    raises NonFiniteError at the next step before reporting a loss."""

    def __init__(self, jump):
        super().__init__(learning_rate=0.01)
        self.jump = jump

    def step(self, problem, theta, state):
        if state.step == self.jump + 1:
            raise NonFiniteError("simulated overflow")
        theta, state, info = super().step(problem, theta, state)
        return (theta * 1e200 if state.step == self.jump + 1 else theta), state, info


class FailsAt(SGD):
    """SGD whose step number ``fail`` raises NonFiniteError, as a diverging method would."""

    def __init__(self, fail):
        super().__init__(learning_rate=0.01)
        self.fail = fail

    def step(self, problem, theta, state):
        if state.step == self.fail:
            raise NonFiniteError("simulated overflow")
        return super().step(problem, theta, state)


def test_history_lengths_equal_steps():
    problem, theta = random_problem(seed=0)
    history = mininn.fit(problem, Adam(1e-2), theta, steps=7)
    assert isinstance(history, History)
    assert history.steps == 7
    for record in (history.loss, history.grad_norm, history.wall_time, history.info):
        assert len(record) == 7
    assert set(history.evaluations) == set(EVALUATION_KINDS)
    for kind in EVALUATION_KINDS:
        assert len(history.evaluations[kind]) == 7
    assert history.theta.shape == (problem.num_params,)
    assert not history.interrupted


def test_records_match_a_manual_loop():
    problem, theta = random_problem(seed=1)
    optimizer = Adam(1e-2)
    history = mininn.fit(problem, optimizer, theta, steps=5)
    state, current = optimizer.init(theta), theta.copy()
    for k in range(5):
        assert history.loss[k] == pytest.approx(problem.value(current), rel=1e-14)
        assert history.grad_norm[k] == pytest.approx(np.linalg.norm(problem.grad(current)),
                                                     rel=1e-14)
        current, state, info = optimizer.step(problem, current, state)
        assert history.info[k].keys() == info.keys()
    np.testing.assert_array_equal(history.theta, current)
    assert history.loss[-1] < history.loss[0]


def test_wall_time_is_increasing():
    problem, theta = random_problem(seed=2)
    history = mininn.fit(problem, SGD(0.01), theta, steps=6)
    times = np.array(history.wall_time)
    assert times[0] > 0
    assert np.all(np.diff(times) > 0)


def test_evaluations_are_cumulative_problem_counts():
    problem, theta = random_problem(seed=3)
    problem.value(theta)  # counts made before fit are included
    history = mininn.fit(problem, Curious(0.01), theta, steps=4)
    assert history.evaluations["value"] == [1, 1, 1, 1]
    assert history.evaluations["grad"] == [1, 2, 3, 4]
    assert history.evaluations["hvp"] == [1, 2, 3, 4]
    assert history.evaluations["ggn_vp"] == [2, 4, 6, 8]
    for kind in EVALUATION_KINDS:
        assert history.evaluations[kind][-1] == problem.counts[kind]


@pytest.mark.parametrize("optimizer, kind", [(KFAC(), "kfac_factors"),
                                              (HessianFree(), "fisher_diagonal")])
def test_second_order_statistics_are_counted_once_per_step(optimizer, kind):
    problem, theta = random_problem(seed=5)
    history = mininn.fit(problem, optimizer, theta, steps=3)
    assert history.evaluations[kind] == [1, 2, 3]


def test_callback_receives_each_step_and_can_stop():
    problem, theta = random_problem(seed=4)
    seen = []

    def callback(step, current, info):
        seen.append((step, current.copy(), info["loss"]))
        return step == 3

    history = mininn.fit(problem, SGD(0.01), theta, steps=50, callback=callback)
    assert history.steps == 4 and [s for s, _, _ in seen] == [0, 1, 2, 3]
    np.testing.assert_array_equal(seen[-1][1], history.theta)
    assert [loss for _, _, loss in seen] == history.loss
    assert problem.counts["grad"] == 4


def test_callback_returning_falsy_values_does_not_stop():
    problem, theta = random_problem(seed=5)
    history = mininn.fit(problem, SGD(0.01), theta, steps=5, callback=lambda *args: None)
    assert history.steps == 5
    history = mininn.fit(problem, SGD(0.01), theta, steps=5, callback=lambda *args: False)
    assert history.steps == 5


def test_minibatch_training_is_deterministic_for_a_seed():
    problem, theta = random_problem(n=30, seed=6)
    a = mininn.fit(problem, SGD(0.05), theta, steps=6, batch_size=8, seed=11)
    b = mininn.fit(problem, SGD(0.05), theta, steps=6, batch_size=8, seed=11)
    c = mininn.fit(problem, SGD(0.05), theta, steps=6, batch_size=8, seed=12)
    assert a.loss == b.loss
    np.testing.assert_array_equal(a.theta, b.theta)
    assert a.loss != c.loss
    full = mininn.fit(problem, SGD(0.05), theta, steps=6)
    assert a.loss[0] != pytest.approx(full.loss[0])
    assert problem.counts["grad"] == 6 * 4  # minibatch evaluations count in the problem


def test_minibatch_losses_are_losses_of_subsets():
    problem, theta = random_problem(n=6, seed=7)
    subset_values = np.array([problem.subset(list(rows)).value(theta)
                              for rows in itertools.combinations(range(6), 2)])
    history = mininn.fit(problem, Frozen(), theta, steps=25, batch_size=2, seed=3)
    for loss in history.loss:
        assert np.min(np.abs(subset_values - loss)) <= 1e-12 * abs(loss)
    assert len(set(history.loss)) > 3  # a fresh batch each step
    assert min(abs(loss - problem.value(theta)) for loss in history.loss) > 1e-6


def test_full_size_batches_reproduce_full_batch_training():
    problem, theta = random_problem(n=12, seed=8)
    batched = mininn.fit(problem, SGD(0.05), theta, steps=4, batch_size=12, seed=0)
    full = mininn.fit(problem, SGD(0.05), theta, steps=4)
    np.testing.assert_allclose(batched.loss, full.loss, rtol=1e-14)
    np.testing.assert_allclose(batched.theta, full.theta, rtol=1e-14)


def test_theta_input_is_not_modified():
    problem, theta = random_problem(seed=9)
    before = theta.copy()
    history = mininn.fit(problem, Adam(0.1), theta, steps=3)
    np.testing.assert_array_equal(theta, before)
    assert not np.array_equal(history.theta, before)
    history.theta[0] += 1.0
    np.testing.assert_array_equal(theta, before)


def test_zero_steps_returns_the_start():
    problem, theta = random_problem(seed=10)
    history = mininn.fit(problem, SGD(0.1), theta, steps=0)
    np.testing.assert_array_equal(history.theta, theta)
    assert history.steps == 0 and history.loss == [] and history.wall_time == []
    assert all(history.evaluations[kind] == [] for kind in EVALUATION_KINDS)
    assert sum(problem.counts.values()) == 0


def test_accepts_lists_as_theta():
    problem, theta = random_problem(seed=11)
    history = mininn.fit(problem, SGD(0.1), list(theta), steps=1)
    assert history.theta.dtype == np.float64


def test_progress_bar_does_not_change_results():
    problem, theta = random_problem(seed=12)
    quiet = mininn.fit(problem, SGD(0.1), theta, steps=3)
    shown = mininn.fit(problem, SGD(0.1), theta, steps=3, progress=True)
    np.testing.assert_array_equal(quiet.theta, shown.theta)


def test_bad_arguments_raise():
    problem, theta = random_problem(seed=13)
    with pytest.raises(ValueError, match="steps"):
        mininn.fit(problem, SGD(0.1), theta, steps=-1)
    with pytest.raises(ShapeError):
        mininn.fit(problem, SGD(0.1), theta[:-1], steps=1)
    broken = theta.copy()
    broken[0] = np.nan
    with pytest.raises(NonFiniteError):
        mininn.fit(problem, SGD(0.1), broken, steps=1)
    with pytest.raises(ValueError, match="minibatch size"):
        mininn.fit(problem, SGD(0.1), theta, steps=1, batch_size=problem.num_examples + 1)


def test_failed_step_raises_divergence_error_keeping_the_last_good_record():
    problem, theta = random_problem(seed=14)
    with pytest.raises(DivergenceError, match="step 3 of FailsAt") as caught:
        mininn.fit(problem, FailsAt(3), theta, steps=10)
    history = caught.value.history
    assert history.steps == 3
    np.testing.assert_array_equal(history.theta, mininn.fit(problem, SGD(0.01), theta, 3).theta)
    with pytest.raises(DivergenceError) as caught:
        mininn.fit(problem, FailsAt(0), theta, steps=10)
    assert caught.value.history.steps == 0
    np.testing.assert_array_equal(caught.value.history.theta, theta)


def test_a_step_that_returned_parameters_with_an_infinite_loss_is_not_recorded():
    problem, theta = random_problem(seed=15)
    with pytest.raises(DivergenceError, match="step 3 of JumpsAt diverged: simulated overflow") as caught:
        mininn.fit(problem, JumpsAt(2), theta, steps=10)
    history = caught.value.history
    assert history.steps == 2 and np.all(np.isfinite(history.loss))
    np.testing.assert_array_equal(history.theta, mininn.fit(problem, SGD(0.01), theta, 2).theta)
    assert isinstance(caught.value.__cause__, NonFiniteError)


def test_other_errors_inside_a_step_keep_their_type_and_carry_the_record():
    problem, theta = random_problem(seed=16)

    class Singular(SGD):
        def step(self, problem, theta, state):
            if state.step == 2:
                raise CurvatureError("simulated singular curvature")
            return super().step(problem, theta, state)

    with pytest.raises(CurvatureError) as caught:
        mininn.fit(problem, Singular(0.01), theta, steps=10)
    assert str(caught.value) == "simulated singular curvature" and caught.value.history.steps == 2
    assert caught.value.__notes__ == ["mininn.fit: the record of the 2 completed steps is in error.history"]


def test_an_error_before_training_carries_no_record():
    problem, theta = random_problem(seed=17)
    with pytest.raises(ShapeError) as caught:
        mininn.fit(problem, SGD(0.1), theta[:-1], steps=3)
    assert caught.value.history is None


def test_gradient_equivalents_weigh_each_kind_by_the_work_convention():
    from mininn.problem import WORK_WEIGHTS, gradient_equivalents

    assert set(WORK_WEIGHTS) == set(EVALUATION_KINDS) and WORK_WEIGHTS["value"] == 0.5
    assert gradient_equivalents({"value": 4, "grad": 2, "ggn_vp": 3}) == 7.0
    problem, theta = random_problem(seed=4)
    history = mininn.fit(problem, HessianFree(), theta, steps=3)
    expected = [gradient_equivalents({kind: history.evaluations[kind][k] for kind in EVALUATION_KINDS})
                for k in range(history.steps)]
    np.testing.assert_allclose(history.gradient_equivalents, expected)
    assert np.all(np.diff(history.gradient_equivalents) > 1)  # a Hessian-free step costs more than a gradient
