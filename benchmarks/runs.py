"""One training run to a target: the work it costs, the cadence of its target checks, its clock.

Work accounting (one convention for every benchmark of the time-to-target family):

- **gradient-equivalents**: every evaluation a method asks of its problem counts by kind,
  the package's ``mininn.problem.WORK_WEIGHTS``: a gradient, a curvature product
  (Gauss-Newton or Hessian), a K-FAC factor pass and a Fisher or Gauss-Newton diagonal
  pass 1 each, a loss value (a forward pass) 1/2,
  in full-training-set units: an evaluation on b of the n training examples counts b/n. A
  dense Gauss-Newton matrix counts its N products.
- **sequential passes**: the same weights without the b/n: what a step costs on hardware
  that processes a whole batch in the time of one example (a batch-size-independent count,
  that of a method's dependent passes: a Hessian-free step is its gradient, its CG products
  and its backtracking losses one after the other).

Neither counts the work that does not touch the data: K-FAC's and Shampoo's
eigendecompositions and Kronecker products, L-BFGS's two-loop recursion. Wall time does.

Target checks: the target metric is evaluated after step s (s = 1, 2, ...) when
:func:`evaluation_due` says so: after each of the first ``EVERY_STEP_UNTIL`` steps, then
whenever ``s`` is a multiple of ``ceil(s / EVERY_STEP_UNTIL)``, so that the step count at the
first evaluation that meets the target exceeds the first step that meets it by at most about
1/EVERY_STEP_UNTIL of it (5%). The rule depends on the step count only. Evaluations are
excluded from the clock and from the work.
"""

import math
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from mininn import Problem, fit
from mininn.errors import CurvatureError, DivergenceError
from mininn.problem import WORK_WEIGHTS

from .common import Clock

#: The target metric is evaluated after every step up to this one, then at gaps of about
#: 1/EVERY_STEP_UNTIL of the step count (see ``evaluation_due``; 310 evaluations in 5000 steps).
EVERY_STEP_UNTIL = 20

CADENCE_RULE = (f"after steps 1..{EVERY_STEP_UNTIL}, then after step s whenever s is a multiple of "
                f"ceil(s / {EVERY_STEP_UNTIL}) (relative error of steps-to-target at most about "
                f"1/{EVERY_STEP_UNTIL})")


def evaluation_due(step):
    """Whether the target metric is evaluated after ``step`` steps (step >= 1)."""
    return step <= EVERY_STEP_UNTIL or step % math.ceil(step / EVERY_STEP_UNTIL) == 0


class WorkLedger:
    """Gradient-equivalents (full-training-set units) and sequential passes, summed over a run."""

    def __init__(self):
        self.gradient_equivalents = 0.0
        self.sequential_passes = 0.0

    def add(self, kind, count, fraction):
        weight = WORK_WEIGHTS[kind] * count
        self.gradient_equivalents += weight * fraction
        self.sequential_passes += weight


class _LedgerCounts(Counter):
    """A Problem's evaluation counts that also add each new evaluation to a ``WorkLedger``."""

    def __init__(self, ledger, fraction):
        super().__init__()
        self.ledger, self.fraction = ledger, fraction

    def __setitem__(self, kind, value):
        self.ledger.add(kind, value - self[kind], self.fraction)
        super().__setitem__(kind, value)


class WorkProblem(Problem):
    """A :class:`~mininn.problem.Problem` whose evaluations, and its subsets', go to one ``WorkLedger``.

    Each subset (minibatch) gets its own counts weighted by its share of the full training
    set, ``len(subset) / full_size``, so an optimizer's curvature minibatch of its gradient
    minibatch is weighted correctly.

    Parameters
    ----------
    model, loss, X, Y, l2
        As for :class:`~mininn.problem.Problem`.
    ledger : WorkLedger or None
        The ledger to add to (a new one when None, for the full training set).
    full_size : int or None
        Number of examples of the full training set (len(X) when None).
    """

    def __init__(self, model, loss, X, Y, l2=0.0, ledger=None, full_size=None):
        self.ledger = WorkLedger() if ledger is None else ledger
        self.full_size = len(X) if full_size is None else full_size
        super().__init__(model, loss, X, Y, l2=l2,
                         counts=_LedgerCounts(self.ledger, len(X) / self.full_size))

    def subset(self, indices):
        checked = super().subset(indices)  # validates the indices
        return WorkProblem(self.model, self.loss, checked.X, checked.Y, self.l2, self.ledger,
                           self.full_size)


@dataclass(frozen=True)
class Target:
    """A target fixed in advance: ``metric`` (a name of a workload's metric) reaching ``value``.

    ``direction`` is "max" (reached when metric >= value, e.g. an accuracy) or "min"
    (metric <= value, e.g. a loss or an error); ``how_fixed`` says how the value was chosen.
    """

    metric: str
    value: float
    direction: str
    how_fixed: str = ""

    def met(self, metric_value):
        if not np.isfinite(metric_value):
            return False
        return metric_value >= self.value if self.direction == "max" else metric_value <= self.value

    def better(self, a, b):
        """Whether metric value a is better than b (NaN is worst)."""
        if not np.isfinite(b):
            return bool(np.isfinite(a))
        return np.isfinite(a) and (a > b if self.direction == "max" else a < b)


@dataclass
class RunResult:
    """The outcome of one run to a target.

    ``steps``, ``gradient_equivalents``, ``sequential_passes`` and ``wall_s`` are those at the
    first evaluation that met the target (None when it was not met); ``best_metric`` the best
    evaluated value; ``stopped_by`` one of "target", "work", "steps", "wall", "diverged".
    """

    reached: bool
    steps: int | None
    gradient_equivalents: float | None
    sequential_passes: float | None
    wall_s: float | None
    best_metric: float
    stopped_by: str
    total_steps: int
    total_gradient_equivalents: float
    total_wall_s: float

    def as_dict(self):
        return asdict(self)


def run_to_target(problem, optimizer, theta0, metric, target, batch_size=None, seed=0,
                  max_work=math.inf, max_steps=10**7, budget_s=math.inf, max_passes=math.inf):
    """Train with ``fit`` until ``metric(theta)`` meets ``target`` or a budget runs out.

    Parameters
    ----------
    problem : WorkProblem
        The full training problem (a fresh ledger: the run's work is read from it).
    optimizer : Optimizer
        The method, already configured.
    theta0 : ndarray of shape (N,)
        Starting parameters.
    metric : callable
        ``metric(theta) -> float``, evaluated at the cadence of ``evaluation_due``, off the
        clock and off the ledger.
    target : Target
        What to reach.
    batch_size : int or None
        ``fit``'s minibatch size (None: each step sees the full problem).
    seed : int
        ``fit``'s minibatch seed.
    max_work, max_steps, budget_s, max_passes : float
        Budgets: gradient-equivalents, steps, wall seconds, sequential passes; the run stops
        after the first step that reaches any of them (so it may overshoot one by a step).

    Returns
    -------
    RunResult
    """
    ledger, clock = problem.ledger, Clock()
    record = {"best": math.nan, "stopped_by": "steps", "hit": None, "steps": 0}

    def callback(step, theta, info):
        steps = step + 1
        record["steps"] = steps
        elapsed = clock.elapsed()
        if evaluation_due(steps):
            with clock.pause():
                value = float(metric(theta))
            if target.better(value, record["best"]):
                record["best"] = value
            if target.met(value):
                record["hit"] = (steps, ledger.gradient_equivalents, ledger.sequential_passes, elapsed)
                record["stopped_by"] = "target"
                return True
        for name, used, budget in (("work", ledger.gradient_equivalents, max_work),
                                   ("passes", ledger.sequential_passes, max_passes),
                                   ("wall", elapsed, budget_s)):
            if used >= budget:
                record["stopped_by"] = name
                return True
        return False

    try:
        fit(problem, optimizer, theta0, max_steps, batch_size=batch_size, seed=seed, callback=callback)
    except (DivergenceError, CurvatureError):  # the run never reaches its target
        record["stopped_by"] = "diverged"
    hit = record["hit"]
    return RunResult(reached=hit is not None, steps=hit and hit[0],
                     gradient_equivalents=hit and hit[1], sequential_passes=hit and hit[2],
                     wall_s=hit and hit[3], best_metric=record["best"], stopped_by=record["stopped_by"],
                     total_steps=record["steps"], total_gradient_equivalents=ledger.gradient_equivalents,
                     total_wall_s=clock.elapsed())
