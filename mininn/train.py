"""The training loop shared by every optimizer."""

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm  # the text bar: tqdm.auto warns in notebooks without ipywidgets

from .errors import DivergenceError, NonFiniteError
from .problem import EVALUATION_KINDS
from .validation import integer, random_seed


@dataclass
class History:
    """What happened during :func:`fit`, one entry per completed step.

    Attributes
    ----------
    loss : list of float
        Objective at the incoming parameters of each step (on that step's batch).
    grad_norm : list of float
        Gradient norm at the incoming parameters.
    wall_time : list of float
        Seconds since the start of training when each step finished.
    evaluations : dict
        For each kind in ``EVALUATION_KINDS``, the cumulative count after each step.
    info : list of StepInfo
        The optimizer's :class:`~mininn.optim.base.StepInfo` of each step.
    theta : ndarray of shape (N,)
        The parameters after the last completed step (the starting point if none).
    """

    theta: np.ndarray
    loss: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    wall_time: list = field(default_factory=list)
    evaluations: dict = field(default_factory=lambda: {k: [] for k in EVALUATION_KINDS})
    info: list = field(default_factory=list)

    @property
    def steps(self):
        """Number of completed steps."""
        return len(self.loss)

    def record(self, theta, info, elapsed, counts):
        """Append one step; ``counts`` maps evaluation kinds to totals (a missing kind is 0)."""
        self.theta = theta
        self.loss.append(float(info["loss"]))
        self.grad_norm.append(float(info["grad_norm"]))
        self.wall_time.append(elapsed)
        for kind in EVALUATION_KINDS:
            self.evaluations[kind].append(counts.get(kind, 0))
        self.info.append(info)


def fit(problem, optimizer, theta, steps, batch_size=None, seed=0, progress=False, callback=None):
    """Run ``steps`` optimizer steps from theta and return the :class:`History`.

    Parameters
    ----------
    problem : Problem
        The full training problem; its ``counts`` accumulate every evaluation.
    optimizer : Optimizer
        Any object with ``init(theta)`` and ``step(problem, theta, state)``.
    theta : ndarray of shape (N,)
        Starting parameters (not modified).
    steps : int
        Number of steps.
    batch_size : int or None
        If given, each step sees a fresh minibatch of this size drawn with a
        generator seeded by ``seed``; otherwise every step sees the full problem.
    progress : bool
        Show a progress bar.
    callback : callable or None
        Called as ``callback(step, theta, info)`` after each step; returning True stops training.

    Raises
    ------
    DivergenceError
        If a step fails with non-finite values; its ``history`` attribute holds
        the record up to the last good parameters.
    """
    theta = np.array(problem.check_parameters(theta))
    steps = integer("steps", steps, 0)
    if batch_size is not None:
        batch_size = integer("batch_size", batch_size, 1)
    rng = np.random.default_rng(random_seed("seed", seed))
    history = History(theta=theta)
    state = optimizer.init(theta)
    start = time.perf_counter()
    for step in tqdm(range(steps), disable=not progress, desc=type(optimizer).__name__):
        batch = problem if batch_size is None else problem.minibatch(batch_size, seed=rng.integers(2**32))
        try:
            theta, state, info = optimizer.step(batch, theta, state)
        except NonFiniteError as error:
            raise DivergenceError(
                f"step {step} of {type(optimizer).__name__} failed: {error}; "
                "the history attribute keeps the last good parameters", history) from error
        history.record(theta, info, time.perf_counter() - start, problem.counts)
        if callback is not None and callback(step, theta, info):
            break
    return history
