"""The training loop shared by every optimizer.

:func:`fit` never loses the record of training and never goes on silently: the first
non-finite loss or gradient norm ends training with a :class:`~mininn.errors.DivergenceError`,
any exception leaves with the record attached as ``error.history``, and an interrupt
(Ctrl-C) returns the record, flagged ``history.interrupted``.
"""

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm  # the text bar: tqdm.auto warns in notebooks without ipywidgets

from .errors import ArgumentError, CurvatureError, DivergenceError, NonFiniteError
from .problem import EVALUATION_KINDS, WORK_WEIGHTS
from .validation import integer, random_seed

#: The errors inside a step that mean its arithmetic failed (non-finite values, a floating-point
#: trap set with ``np.seterr``, a matrix that numpy's LAPACK could not factorise).
NUMERICAL_FAILURES = (NonFiniteError, FloatingPointError, np.linalg.LinAlgError)


@dataclass
class History:
    """What happened during :func:`fit`, one entry per completed step.

    Attributes
    ----------
    loss : list of float
        Objective at the incoming parameters of each step (on that step's batch); all finite.
    grad_norm : list of float
        Gradient norm at the incoming parameters.
    wall_time : list of float
        Seconds since the start of training when each step finished.
    evaluations : dict
        For each kind in ``EVALUATION_KINDS``, the cumulative count after each step.
    info : list of StepInfo
        The optimizer's :class:`~mininn.optim.base.StepInfo` of each step.
    theta : ndarray of shape (N,)
        The parameters after the last recorded step (the starting point if none). In the
        history of a :class:`~mininn.errors.DivergenceError` their loss is finite: a step
        whose parameters turned out to have a non-finite loss is not recorded.
    interrupted : bool
        True when a ``KeyboardInterrupt`` (Ctrl-C, SIGINT) stopped training; the steps
        completed before it are recorded, the interrupted one is not.
    """

    theta: np.ndarray
    loss: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    wall_time: list = field(default_factory=list)
    evaluations: dict = field(default_factory=lambda: {k: [] for k in EVALUATION_KINDS})
    info: list = field(default_factory=list)
    interrupted: bool = False

    @property
    def steps(self):
        """Number of completed steps."""
        return len(self.loss)

    @property
    def gradient_equivalents(self):
        """Cumulative work after each step in gradient-equivalents (``WORK_WEIGHTS``), shape (steps,)."""
        totals = np.zeros(self.steps)
        for kind, series in self.evaluations.items():
            totals += WORK_WEIGHTS[kind] * np.asarray(series, dtype=float)
        return totals

    def record(self, theta, info, elapsed, counts):
        """Append one step; ``counts`` maps evaluation kinds to totals (a missing kind is 0)."""
        self.theta = theta
        self.loss.append(float(info["loss"]))
        self.grad_norm.append(float(info["grad_norm"]))
        self.wall_time.append(elapsed)
        for kind in EVALUATION_KINDS:
            self.evaluations[kind].append(counts.get(kind, 0))
        self.info.append(info)

    def _drop_last(self, theta):
        """Remove the last recorded step; theta, the parameters it started from, becomes ``self.theta``."""
        for record in (self.loss, self.grad_norm, self.wall_time, self.info, *self.evaluations.values()):
            record.pop()
        self.theta = theta


def fit(problem, optimizer, theta, steps, batch_size=None, seed=0, progress=False, callback=None):
    """Run ``steps`` optimizer steps from theta and return the :class:`History`.

    Parameters
    ----------
    problem : Problem
        The full training problem; its ``counts`` accumulate every evaluation.
    optimizer : Optimizer
        Any object with ``init(theta)`` and ``step(problem, theta, state)``.
    theta : ndarray of shape (N,)
        Starting parameters (not modified); their loss must be finite.
    steps : int
        Number of steps.
    batch_size : int or None
        If given, each step sees a fresh minibatch of this size drawn with a
        generator seeded by ``seed``; otherwise every step sees the full problem.
    progress : bool
        Show a progress bar.
    callback : callable or None
        Called as ``callback(step, theta, info)`` after each step; returning True stops training.

    Returns
    -------
    History
        The record of the completed steps. A ``KeyboardInterrupt`` (Ctrl-C) during
        training does not propagate: fit warns and returns the record of the steps
        completed before it, with ``history.interrupted`` True (check it to stop an
        outer loop too).

    Raises
    ------
    NonFiniteError
        Before any step, if the loss at theta is not finite (data too large for float64:
        standardise them); checked with one forward pass that is not counted.
    DivergenceError
        At the first step whose loss or gradient norm at its incoming parameters is not
        finite, or that fails with non-finite values (a ``NonFiniteError`` or numpy's
        ``FloatingPointError``). Its ``history`` holds the steps before it, up to the
        last parameters whose loss was finite (``history.theta``).
    CurvatureError
        If numpy's linear algebra fails inside a step (``numpy.linalg.LinAlgError``),
        usually on a curvature matrix with overflowed entries.

    Notes
    -----
    Any other exception raised by a step or by the callback propagates unchanged, with
    the record of the completed steps attached as ``error.history`` (and a note saying so).
    """
    theta = np.array(problem.check_parameters(theta))
    steps = integer("steps", steps, 0)
    if batch_size is not None:
        batch_size = integer("batch_size", batch_size, 1)
    rng = np.random.default_rng(random_seed("seed", seed))
    _check_optimizer(optimizer)
    if callback is not None and not callable(callback):
        raise ArgumentError(f"callback must be a function callback(step, theta, info), got {callback!r}")
    problem.check_finite_loss(theta)
    history = History(theta=theta)
    state = optimizer.init(theta)
    last_finite = theta  # the last parameters whose loss was measured finite
    start = time.perf_counter()
    bar = tqdm(range(steps), disable=not progress, desc=type(optimizer).__name__)
    try:
        for step in bar:
            batch = problem if batch_size is None else problem.minibatch(batch_size, seed=rng.integers(2**32))
            try:
                new_theta, state, info = optimizer.step(batch, theta, state)
            except NUMERICAL_FAILURES as error:
                _end_at_finite_loss(history, batch, theta, last_finite)
                raise _numerical_failure(error, step, optimizer, history) from error
            if not (np.isfinite(info["loss"]) and np.isfinite(info["grad_norm"])):
                _end_at_finite_loss(history, batch, theta, last_finite)
                raise _diverged(step, optimizer, history, f"the loss at its incoming parameters is "
                                f"{info['loss']:g} and the gradient norm {info['grad_norm']:g}")
            history.record(new_theta, info, time.perf_counter() - start, problem.counts)
            last_finite = new_theta if np.isfinite(info["loss_after"]) else theta
            theta = new_theta
            if callback is not None and callback(step, theta, info):
                break
    except KeyboardInterrupt:
        history.interrupted = True
        warnings.warn(f"training interrupted after {history.steps} completed steps of "
                      f"{type(optimizer).__name__}: fit returns their record, with history.interrupted True",
                      RuntimeWarning, stacklevel=2)
    except Exception as error:
        if getattr(error, "history", None) is None:
            _attach(error, history)
        raise
    finally:
        bar.close()
    return history


def _check_optimizer(optimizer):
    if isinstance(optimizer, type) or not all(callable(getattr(optimizer, name, None))
                                              for name in ("init", "step")):
        raise ArgumentError(f"optimizer must be an optimizer object with init and step, such as "
                            f"mininn.optim.Adam() (an instance, not the class), got {optimizer!r}")


def _end_at_finite_loss(history, problem, theta, last_finite):
    """Drop the last recorded step if the loss at theta, the parameters it returned, is not finite.

    ``last_finite`` is theta itself or the parameters that step started from, whose loss
    was finite; the loss at theta is evaluated on problem without counting.
    """
    if theta is last_finite:
        return
    with np.errstate(all="ignore"):
        if not np.isfinite(problem.objective(theta)):
            history._drop_last(last_finite)


def _diverged(step, optimizer, history, what):
    hint = getattr(optimizer, "divergence_hint", "restart from history.theta with a smaller step")
    return DivergenceError(
        f"step {step} of {type(optimizer).__name__} diverged: {what}; {hint}. {_kept(history)}", history)


def _numerical_failure(error, step, optimizer, history):
    """The mininn error, with ``history`` attached, for a numerical failure inside a step."""
    if not isinstance(error, np.linalg.LinAlgError):
        cause = error if isinstance(error, NonFiniteError) else f"floating-point error ({error})"
        return _diverged(step, optimizer, history, cause)
    hint = getattr(optimizer, "divergence_hint", "raise the damping")
    failure = CurvatureError(
        f"step {step} of {type(optimizer).__name__} failed in numpy.linalg ({error}): a curvature matrix "
        "of this step could not be factorised, usually because it holds overflowed or NaN entries; "
        f"standardise the inputs and targets, or {hint}. {_kept(history)}")
    failure.history = history
    return failure


def _kept(history):
    return (f"error.history keeps the {history.steps} steps up to the last parameters whose loss was "
            "finite (history.theta)")


def _attach(error, history):
    """Attach the record to an exception leaving fit, and say so in its traceback."""
    error.history = history
    error.add_note(f"mininn.fit: the record of the {history.steps} completed steps is in error.history")
