"""The bad-input table: what a hostile but realistic user tries, and the clear error or kept record.

One test (or one parametrised case) per row of the reliability issue: training that
diverges stops at the first non-finite loss with the finite part of its record; the
record survives a failing callback, an error inside a step and an interrupt; a Problem
refuses data it cannot be trained on; every argument error is a MininnError naming the
argument and its valid range.
"""

import inspect
import signal

import numpy as np
import pytest
from helpers import random_problem

import mininn
from mininn import MLP, Problem, data, fit, optim
from mininn.errors import (
    ArgumentError,
    CurvatureError,
    DivergenceError,
    MininnError,
    NonFiniteError,
    ShapeError,
    TargetError,
)
from mininn.optim import KFAC, LBFGS, SGD, Adam, GaussNewton, HessianFree, Momentum, Nesterov

#: Every concrete optimizer class the package exports.
OPTIMIZERS = [
    obj for name in optim.__all__
    if inspect.isclass(obj := getattr(optim, name)) and issubclass(obj, optim.Optimizer)
    and name not in ("Optimizer", "FirstOrder", "LevenbergMarquardt")
]


def regression(scale_x=1.0, scale_y=1.0):
    """(problem, theta): a ReLU network on the 1-D regression data, inputs and targets scaled."""
    X, Y = data.regression_1d(n=64, seed=0)
    model = MLP([1, 16, 1])
    return Problem(model, "mse", scale_x * X, scale_y * Y), model.init(0)


def first_non_finite_loss(problem, optimizer, theta, steps):
    """The index of the first step whose incoming loss is not finite, by a plain loop of steps."""
    state = optimizer.init(theta)
    for step in range(steps):
        loss = problem.value(theta)
        if not np.isfinite(loss):
            return step
        theta, state, _ = optimizer.step(problem, theta, state)
    return None


def assert_finite_record(history, problem):
    assert np.all(np.isfinite(history.loss)) and np.all(np.isfinite(history.grad_norm))
    assert np.all(np.isfinite(history.theta)) and np.isfinite(problem.value(history.theta))


# ------------------------------------------------------ 1. divergence is never silent


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("learning_rate, steps", [(1e10, 20), (1e6, 60)])
@pytest.mark.parametrize("cls", [SGD, Momentum, Nesterov])
def test_a_huge_learning_rate_stops_at_the_first_infinite_loss(cls, learning_rate, steps):
    # Before: at 1e10, History.loss = inf from step 10 and fit returned normally; at 1e6 the
    # DivergenceError came at step 43, after 23 infinite losses, with an infinite-loss theta.
    problem, theta = regression()
    first = first_non_finite_loss(problem, cls(learning_rate), theta, steps)
    assert first is not None and 0 < first < steps
    with pytest.raises(DivergenceError, match=f"step {first} of {cls.__name__} diverged: the loss at its "
                       "incoming parameters is inf.*lower the learning rate") as caught:
        fit(problem, cls(learning_rate), theta, steps)
    history = caught.value.history
    assert_finite_record(history, problem)
    # the step that returned the infinite-loss parameters is not recorded: the record ends at
    # the last parameters whose loss was finite, and these are the parameters after its last step
    assert history.steps == first - 1
    np.testing.assert_array_equal(history.theta, fit(problem, cls(learning_rate), theta, first - 1).theta)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda cls: cls.__name__)
def test_no_optimizer_records_a_non_finite_loss(cls):
    # Every step of every optimizer returns finite parameters with a finite loss or is rejected:
    # from a start whose loss is finite but about 4e12, fit either trains on or stops with an
    # error that keeps a finite record (the SGD family diverges, pure Newton meets a singular H).
    problem, theta = random_problem(sizes=(3, 8, 2), n=24, seed=3)
    theta = 1e3 * theta
    assert 1e12 < problem.value(theta) < 1e13
    try:
        history = fit(problem, cls(), theta, steps=8)
    except MininnError as error:
        history = error.history
    assert history is not None
    assert_finite_record(history, problem)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_a_floating_point_trap_inside_a_step_becomes_a_divergence_error():
    # With np.seterr(over="raise") the overflow inside a step raises FloatingPointError: it
    # becomes a DivergenceError that keeps the finite record, not a bare numpy error.
    problem, theta = regression()
    with np.errstate(over="raise"), pytest.raises(DivergenceError, match="floating-point error") as caught:
        fit(problem, SGD(1e10), theta, 20)
    assert isinstance(caught.value.__cause__, FloatingPointError)
    assert_finite_record(caught.value.history, problem)


def test_data_that_overflow_at_the_start_are_refused_naming_their_scale():
    # Before: inputs x 1e300 gave "|theta| = inf" for a finite theta; inputs x 1e200 with K-FAC
    # let numpy's LinAlgError "Eigenvalues did not converge" escape with the history lost.
    for scale, optimizer in [(1e300, SGD(0.1)), (1e200, KFAC())]:
        problem, theta = regression(scale_x=scale)
        with pytest.raises(NonFiniteError, match=r"loss at theta is inf.*max \|X\| = 9.95e\+\d{3}.*"
                           r"\|theta\| = 5.29\).*standardise the inputs") as caught:
            fit(problem, optimizer, theta, 3)
        assert not isinstance(caught.value, DivergenceError)  # refused before the first step
        assert sum(problem.counts.values()) == 0


@pytest.mark.parametrize("make", [Adam, GaussNewton])
def test_targets_whose_square_overflows_are_refused(make):
    # Before: targets x 1e300 (MSE) gave value() = inf and Gauss-Newton and Adam recorded the
    # losses [inf, inf, inf] without an error.
    with pytest.raises(NonFiniteError, match=r"max \|Y\| = 1.28e\+300.*standardise the targets"):
        problem, theta = regression(scale_y=1e300)
        fit(problem, make(), theta, 3)
    problem, theta = regression(scale_y=1e150)  # large but representable: trainable
    assert np.isfinite(problem.value(theta))


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_norms_in_messages_do_not_overflow():
    # Before: "|theta| = inf" for finite parameters whose squared norm overflows.
    from mininn.validation import norm

    assert norm(np.full(4, 1e300)) == pytest.approx(2e300, rel=1e-15)
    assert norm(np.array([3.0, 4.0])) == 5.0 and norm(np.array([np.inf, 1.0])) == np.inf
    problem, theta = regression()
    huge = np.full_like(theta, 1e300)
    with pytest.raises(NonFiniteError, match=r"\|theta\| = 7e\+300"):
        SGD(1.0).step(problem, huge, SGD(1.0).init(huge))


# ------------------------------------------------------ 2. the record is never lost


class FailsAt(SGD):
    """SGD whose step number ``at`` raises ``error`` (an exception instance) from inside the step."""

    def __init__(self, at, error):
        super().__init__(learning_rate=0.01)
        self.at, self.error = at, error

    def _step(self, problem, theta, state):
        if state.step == self.at:
            raise self.error
        return super()._step(problem, theta, state)


def test_a_failing_callback_leaves_the_record_on_the_exception():
    # Before: the exception propagated and no History was reachable.
    problem, theta = regression()
    seen = []

    def callback(step, current, info):
        seen.append(current)
        if step == 3:
            raise RuntimeError("the callback failed")

    with pytest.raises(RuntimeError, match="the callback failed") as caught:
        fit(problem, SGD(0.01), theta, 10, callback=callback)
    history = caught.value.history
    assert history.steps == 4 and not history.interrupted
    np.testing.assert_array_equal(history.theta, seen[-1])
    assert any("error.history" in note for note in caught.value.__notes__)


def test_an_error_inside_a_step_leaves_the_record_on_the_exception():
    problem, theta = regression()
    with pytest.raises(LookupError, match="inside the step") as caught:
        fit(problem, FailsAt(3, LookupError("inside the step")), theta, 10)
    history = caught.value.history
    assert history.steps == 3
    np.testing.assert_array_equal(history.theta, fit(problem, SGD(0.01), theta, 3).theta)


@pytest.mark.parametrize("where", ["callback", "step"])
def test_a_keyboard_interrupt_returns_the_record_flagged_interrupted(where):
    # Before: KeyboardInterrupt propagated and minutes of training were lost.
    problem, theta = regression()

    def callback(step, current, info):
        if step == 3:
            raise KeyboardInterrupt

    optimizer = FailsAt(4, KeyboardInterrupt()) if where == "step" else SGD(0.01)
    with pytest.warns(RuntimeWarning, match="interrupted after 4 completed steps"):
        history = fit(problem, optimizer, theta, 10, callback=callback if where == "callback" else None)
    assert history.interrupted and history.steps == 4
    np.testing.assert_array_equal(history.theta, fit(problem, SGD(0.01), theta, 4).theta)
    assert not fit(problem, SGD(0.01), theta, 4).interrupted


class InterruptedCurvature(Problem):
    """Sends this process SIGINT from inside Gauss-Newton product number ``at`` (counted from 1)."""

    def __init__(self, problem, at):
        super().__init__(problem.model, problem.loss, problem.X, problem.Y)
        self.at, self.products = at, 0

    def ggn_operator(self, theta):
        product = super().ggn_operator(theta)

        def interrupted(v):
            self.products += 1
            if self.products == self.at:
                signal.raise_signal(signal.SIGINT)
            return product(v)
        return interrupted


def test_sigint_during_a_hessian_free_step_returns_the_completed_steps():
    problem, theta = regression()
    clean = fit(problem, HessianFree(), theta, 4)
    at = clean.evaluations["ggn_vp"][1] + 1  # the first product of step 2, inside its CG run
    interrupted = InterruptedCurvature(problem, at)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.warns(RuntimeWarning, match="interrupted after 2 completed steps of HessianFree"):
            history = fit(interrupted, HessianFree(), theta, 4)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert history.interrupted and history.steps == 2
    np.testing.assert_array_equal(history.theta, fit(problem, HessianFree(), theta, 2).theta)
    assert history.loss == clean.loss[:2]


class NaNFactorsFrom(Problem):
    """K-FAC factors full of NaN from the call number ``at`` on (counted from 0)."""

    def __init__(self, problem, at):
        super().__init__(problem.model, problem.loss, problem.X, problem.Y)
        self.at, self.calls = at, 0

    def kfac_factors(self, theta, fisher="sampled", rng=0):
        factors = super().kfac_factors(theta, fisher, rng)
        self.calls += 1
        if self.calls > self.at:
            factors = [(np.full_like(A, np.nan), np.full_like(G, np.nan)) for A, G in factors]
        return factors


def test_a_linalg_error_inside_a_step_becomes_a_curvature_error_with_the_record():
    # Before: numpy's LinAlgError "Eigenvalues did not converge" escaped K-FAC and the history was lost.
    problem, theta = regression()
    broken = NaNFactorsFrom(problem, at=2)
    with pytest.raises(CurvatureError, match="step 2 of KFAC failed in numpy.linalg") as caught:
        fit(broken, KFAC(inverse_every=1), theta, 5)
    assert isinstance(caught.value.__cause__, np.linalg.LinAlgError)
    history = caught.value.history
    assert history.steps == 2
    np.testing.assert_array_equal(history.theta, fit(problem, KFAC(inverse_every=1), theta, 2).theta)


# ------------------------------------------------------ 3. a Problem refuses what cannot be trained


@pytest.mark.parametrize("loss, k", [("mse", 1), ("sigmoid_cross_entropy", 1), ("softmax_cross_entropy", 3)])
def test_an_empty_data_set_is_refused(loss, k):
    # Before: accepted; value() was NaN, Adam ran with NaN losses, L-BFGS returned NaN, K-FAC
    # raised LinAlgError, Hessian-free blamed "the preconditioner", Newton blamed dead ReLUs.
    with pytest.raises(ShapeError, match=r"X has shape \(0, 2\): a problem needs at least one example"):
        Problem(MLP([2, 4, k]), loss, np.zeros((0, 2)), np.zeros((0, k)))


@pytest.mark.parametrize("labels", [(-1.0, 2.0), (-1.0, 1.0), (0.0, 1.5)])
def test_sigmoid_cross_entropy_refuses_targets_outside_zero_one(labels):
    # Before: labels in {-1, 2} let Adam drive the loss to -75,976 (unbounded below).
    X, Y = data.two_spirals(n=64, seed=0)
    Y = np.where(Y > 0, labels[1], labels[0])
    with pytest.raises(TargetError, match=r"targets in \[0, 1\].*entries of Y lie outside.*\(Y \+ 1\) / 2"):
        Problem(MLP([2, 8, 1]), "sigmoid_cross_entropy", X, Y)
    soft = np.clip(Y, 0.0, 1.0) * 0.8 + 0.1  # probabilities are targets too
    assert Problem(MLP([2, 8, 1]), "sigmoid_cross_entropy", X, soft).num_examples == 64


def test_softmax_cross_entropy_refuses_rows_that_are_not_distributions():
    # Before: rows that are not distributions let L-BFGS drive the loss below 0 (to -2.77).
    rng = np.random.default_rng(0)
    X, one_hot = rng.standard_normal((64, 2)), np.eye(3)[rng.integers(3, size=64)]
    model = MLP([2, 8, 3])
    negative = 1.5 * one_hot - 0.5 * np.roll(one_hot, 1, axis=1)  # rows summing to 1, an entry -0.5
    for bad, row in [(2.0 * one_hot, "smallest entry 0, sum 2"), (negative, "smallest entry -0.5, sum 1")]:
        with pytest.raises(TargetError, match=f"probability distribution.*{row}.*mininn.data.one_hot"):
            Problem(model, "softmax_cross_entropy", X, bad)
    soft = 0.9 * one_hot + 0.1 / 3  # label smoothing: still distributions
    rounded = soft.astype(np.float32)  # rows summing to 1 in single precision only
    for targets in (one_hot, soft, rounded):
        assert Problem(model, "softmax_cross_entropy", X, targets).num_examples == 64


def test_check_targets_is_one_method_per_loss():
    Y = np.array([[0.0, 1.0], [1.0, 0.0]])
    for loss in mininn.losses.LOSSES.values():
        loss.check_targets(Y)  # one-hot rows suit every loss
        with pytest.raises(NonFiniteError, match="finite targets"):
            loss.check_targets(np.array([[np.nan, 1.0]]))
    mininn.losses.mse.check_targets(np.array([[-5.0, 7.0]]))
    assert issubclass(TargetError, MininnError) and issubclass(TargetError, ValueError)


def test_data_that_are_not_real_numbers_are_refused_naming_the_array():
    model = MLP([1, 2, 1])
    with pytest.raises(ArgumentError, match="X must be an array of real numbers"):
        Problem(model, "mse", [["a"], ["b"]], [[1.0], [2.0]])
    with pytest.raises(ArgumentError, match="Y must hold real numbers, got complex"):
        Problem(model, "mse", [[1.0], [2.0]], [[1.0 + 1j], [2.0]])


def test_subset_indices_must_be_integers_inside_the_data():
    problem, _ = regression()
    with pytest.raises(ArgumentError, match="indices must be integers"):
        problem.subset([0.5, 1.5])
    with pytest.raises(ArgumentError, match=r"indices must lie in \[0, 64\)"):
        problem.subset([3, 64])


# ------------------------------------------------------ 4. argument errors name the argument


BAD_SEEDS = [-1, 1.5, "abc", None]


@pytest.mark.parametrize("seed", BAD_SEEDS)
@pytest.mark.parametrize("make", [
    lambda seed: data.regression_1d(n=10, seed=seed),
    lambda seed: data.two_spirals(n=10, seed=seed),
    lambda seed: data.curves(n=3, seed=seed),
    lambda seed: data.mnist1d(num_samples=100, seed=seed),
    lambda seed: MLP([1, 2, 1]).init(seed),
    lambda seed: regression()[0].minibatch(4, seed=seed),
    lambda seed: (lambda problem, theta: fit(problem, SGD(0.01), theta, 2, batch_size=8, seed=seed))(
        *regression()),
    lambda seed: HessianFree(seed=seed),
    lambda seed: KFAC(seed=seed),
], ids=["regression_1d", "two_spirals", "curves", "mnist1d", "MLP.init", "minibatch", "fit", "HessianFree",
        "KFAC"])
def test_seeds_must_be_non_negative_integers(make, seed):
    # Before: numpy's "expected non-negative integer" or SeedSequence's TypeError, naming no argument.
    with pytest.raises(ArgumentError, match=f"seed must be an integer >= 0, got {seed!r}"):
        make(seed)


@pytest.mark.parametrize("call, message", [
    (lambda p, t: fit(p, SGD(0.01), t, steps=2.5), "steps must be an integer >= 0, got 2.5"),
    (lambda p, t: fit(p, SGD(0.01), t, steps=-1), "steps must be an integer >= 0, got -1"),
    (lambda p, t: fit(p, SGD(0.01), t, 2, batch_size=2.5), "batch_size must be an integer >= 1, got 2.5"),
    (lambda p, t: fit(p, SGD(0.01), t, 2, callback="abc"), "callback must be a function"),
    (lambda p, t: fit(p, Adam, t, 2), r"an instance, not the class"),
    (lambda p, t: p.minibatch(2.5), "minibatch size must be an integer between 1 and 64, got 2.5"),
], ids=["steps=2.5", "steps=-1", "batch_size=2.5", "callback='abc'", "optimizer class", "minibatch(2.5)"])
def test_fit_arguments_must_be_valid(call, message):
    # Before: "'float' object cannot be interpreted as an integer" and similar builtin errors.
    problem, theta = regression()
    with pytest.raises(ArgumentError, match=message):
        call(problem, theta)


def test_layer_widths_must_be_integers():
    # Before: MLP([2, 2.7, 1]) silently made a width of 2.
    for width in (2.7, 2.0, "3", 0, True):
        with pytest.raises(ArgumentError, match=f"sizes\\[1\\] must be a positive integer, got {width!r}"):
            MLP([2, width, 1])


@pytest.mark.parametrize("make, name", [
    (lambda: SGD(learning_rate="0.1"), "learning_rate"),
    (lambda: SGD(-1), "learning_rate"),
    (lambda: Momentum(momentum=1.0), "momentum"),
    (lambda: Adam(beta1=1.5), "beta1"),
    (lambda: HessianFree(cg_max_iters=0), "cg_max_iters"),
    (lambda: HessianFree(curvature_batch_size=2.5), "curvature_batch_size"),
    (lambda: KFAC(damping=-1), "damping"),
    (lambda: KFAC(inverse_every=2.5), "inverse_every"),
    (lambda: LBFGS(history=0), "history"),
    (lambda: GaussNewton(max_retries=-1), "max_retries"),
], ids=["SGD('0.1')", "SGD(-1)", "Momentum(momentum=1)", "Adam(beta1=1.5)", "HessianFree(cg_max_iters=0)",
        "HessianFree(curvature_batch_size=2.5)", "KFAC(damping=-1)", "KFAC(inverse_every=2.5)",
        "LBFGS(history=0)", "GaussNewton(max_retries=-1)"])
def test_bad_hyperparameters_raise_argument_errors_naming_them(make, name):
    # Before: a plain ValueError (or a TypeError from a comparison), which except MininnError misses.
    with pytest.raises(ArgumentError, match=f"^{name} must be"):
        make()


@pytest.mark.parametrize("make", [lambda: HessianFree(damping=np.inf), lambda: KFAC(damping=np.inf),
                                  lambda: GaussNewton(damping=np.inf), lambda: SGD(np.inf)],
                         ids=["HessianFree", "KFAC", "GaussNewton", "SGD"])
def test_infinite_hyperparameters_are_refused_at_construction(make):
    # Before: HessianFree(damping=inf) was accepted and failed at step 0 blaming the preconditioner.
    with pytest.raises(NonFiniteError, match=r"(damping|learning_rate) must be .*finite.*, got inf"):
        make()


def test_mlp_sizes_must_be_a_sequence():
    with pytest.raises(ShapeError, match="sequence of layer widths"):
        MLP(3)


def test_hessian_free_names_an_overflowing_preconditioner():
    # Inputs of size 1e160 and weights of 1e-160: the loss is finite, the squared inputs are not.
    rng = np.random.default_rng(0)
    X = 1e160 * rng.standard_normal((10, 2))
    problem = Problem(MLP([2, 3, 1], activation="identity"), "mse", X, rng.standard_normal((10, 1)))
    theta = 1e-160 * problem.model.init(0)
    with pytest.raises(DivergenceError, match="preconditioner overflowed"):
        fit(problem, HessianFree(), theta, steps=1)
