"""Limited-memory BFGS with a strong-Wolfe line search (Nocedal & Wright 2006, ch. 3 and 7).

L-BFGS keeps the last few steps ``s = theta_new - theta`` and gradient changes
``y = g_new - g`` and applies an inverse-Hessian approximation built from them
with the two-loop recursion; it needs only values and gradients.
"""

from collections import namedtuple
from typing import NamedTuple

import numpy as np

from ..errors import ArgumentError
from ..validation import norm, positive, positive_int
from .base import Optimizer, StepInfo

#: The outcome of a line search: whether it succeeded, the step size (0 on failure), the loss
#: and gradient at the accepted point (at the start on failure) and the evaluations used.
LineSearchResult = namedtuple("LineSearchResult", "success step_size loss gradient evaluations")


def two_loop_recursion(gradient, pairs):
    """The L-BFGS product ``H_k g`` (Nocedal & Wright Alg. 7.4), an approximation of ``H^{-1} g``.

    Parameters
    ----------
    gradient : ndarray of shape (N,)
        The vector to multiply.
    pairs : list of tuple
        Curvature pairs ``(s, y)``, oldest first, each with ``s.y > 0``. The
        initial matrix is ``gamma I`` with ``gamma = s.y / y.y`` of the newest
        pair (the identity if there is none).
    """
    q = np.array(gradient, dtype=float)
    alphas = []
    for s, y in reversed(pairs):
        alpha = (s @ q) / (y @ s)
        q -= alpha * y
        alphas.append(alpha)
    if pairs:
        s, y = pairs[-1]
        q *= (s @ y) / (y @ y)
    for (s, y), alpha in zip(pairs, reversed(alphas)):
        beta = (y @ q) / (y @ s)
        q += (alpha - beta) * s
    return q


def _cubic_minimizer(a, b):
    """Minimiser of the cubic through (step, value, slope) triples a and b, or None (N&W eq. 3.59)."""
    (x_a, f_a, d_a), (x_b, f_b, d_b) = a, b
    with np.errstate(all="ignore"):
        d1 = d_a + d_b - 3 * (f_a - f_b) / (x_a - x_b)
        radicand = d1**2 - d_a * d_b
        if not radicand >= 0:
            return None
        d2 = np.sign(x_b - x_a) * np.sqrt(radicand)
        x = x_b - (x_b - x_a) * (d_b + d2 - d1) / (d_b - d_a + 2 * d2)
    return x if np.isfinite(x) else None


def wolfe_line_search(value_and_grad, theta, loss, gradient, direction,
                      c1=1e-4, c2=0.9, max_evaluations=20, initial_step=1.0):
    """A step size satisfying the strong Wolfe conditions (Nocedal & Wright Alg. 3.5 and 3.6).

    With ``phi(a) = L(theta + a d)``, the returned step a satisfies
    ``phi(a) <= phi(0) + c1 a phi'(0)`` (sufficient decrease) and
    ``|phi'(a)| <= c2 |phi'(0)|`` (curvature). Steps grow by doubling from
    ``initial_step`` until the minimum is bracketed; the bracket is then
    shrunk with safeguarded cubic interpolation (bisection where it fails).

    Parameters
    ----------
    value_and_grad : callable
        Maps parameters of shape (N,) to (loss, gradient).
    theta : ndarray of shape (N,)
        Start of the line.
    loss : float
        The loss at theta.
    gradient : ndarray of shape (N,)
        The gradient at theta.
    direction : ndarray of shape (N,)
        A descent direction (``gradient.direction < 0``).
    c1, c2 : float
        Wolfe constants, ``0 < c1 < c2 < 1``.
    max_evaluations : int
        Most trial steps, each one call of ``value_and_grad`` (none where the trial
        point overflows to non-finite parameters).
    initial_step : float
        First step size tried.

    Returns
    -------
    result : namedtuple (success, step_size, loss, gradient, evaluations)
        ``success`` is False if no step was found within ``max_evaluations``
        (or the direction is not a descent direction); then ``step_size`` is 0
        and ``loss`` and ``gradient`` are those at theta.
    """
    slope0 = gradient @ direction
    trials = evaluations = 0  # trial steps; loss-and-gradient evaluations (no overflowing trials)

    def found(step, value, grad):
        return LineSearchResult(True, step, value, grad, evaluations)

    def failed():
        return LineSearchResult(False, 0.0, loss, gradient, evaluations)

    def phi(step):
        nonlocal trials, evaluations
        trials += 1
        with np.errstate(over="ignore", invalid="ignore"):
            trial = theta + step * direction
            if not np.all(np.isfinite(trial)):
                return np.inf, np.inf, None
            evaluations += 1
            value, grad = value_and_grad(trial)
        if not (np.isfinite(value) and np.all(np.isfinite(grad))):
            return np.inf, np.inf, None
        return value, grad @ direction, grad

    def too_high(step, value, reference):
        return value > loss + c1 * step * slope0 or value >= reference

    def zoom(lo, hi):
        # lo: (step, value, slope, gradient) satisfying sufficient decrease with the lowest value
        while trials < max_evaluations:
            low, high = sorted((lo[0], hi[0]))
            width = high - low
            if width <= np.finfo(float).eps * high:
                break
            step = _cubic_minimizer(lo[:3], hi[:3])
            if step is None or not low + 0.1 * width <= step <= high - 0.1 * width:
                step = 0.5 * (low + high)
            value, slope, grad = phi(step)
            if too_high(step, value, lo[1]):
                hi = (step, value, slope, grad)
            elif abs(slope) <= -c2 * slope0:
                return found(step, value, grad)
            else:
                if slope * (hi[0] - lo[0]) >= 0:
                    hi = lo
                lo = (step, value, slope, grad)
        return failed()

    previous = (0.0, loss, slope0, gradient)
    step = float(initial_step)
    while slope0 < 0 and trials < max_evaluations:
        value, slope, grad = phi(step)
        current = (step, value, slope, grad)
        if too_high(step, value, previous[1] if previous[0] > 0 else np.inf):
            return zoom(previous, current)
        if abs(slope) <= -c2 * slope0:
            return found(step, value, grad)
        if slope >= 0:
            return zoom(current, previous)
        previous, step = current, 2 * step
    return failed()


class LBFGSState(NamedTuple):
    step: int
    #: curvature pairs (s, y), oldest first
    pairs: tuple
    #: (problem.uid, theta, loss, gradient) at the returned theta, or None
    point: tuple | None


class LBFGS(Optimizer):
    """L-BFGS (Nocedal & Wright Alg. 7.5) with a strong-Wolfe line search.

    Each step applies the two-loop recursion to the gradient, tries the unit
    step first, and stores the new pair (s, y) unless ``s.y <= eps |s| |y|``
    (eps the machine epsilon), keeping the newest ``history`` pairs. If the
    line search fails, the memory is cleared and steepest descent is tried; if
    that fails too, theta is kept and ``info['accepted']`` is False.

    Parameters
    ----------
    history : int
        Number of curvature pairs kept.
    max_line_search : int
        Most loss-and-gradient evaluations per line search.
    c1, c2 : float
        Strong Wolfe constants, ``0 < c1 < c2 < 1``.

    Notes
    -----
    ``info.step_size`` is the line search's step (0 if rejected) and ``info.loss_after``
    the loss at the returned theta. ``info`` adds ``line_search_evals``,
    ``steepest_descent`` (True when the step was taken, or attempted, along -g after a
    failed L-BFGS line search) and ``memory`` (pairs stored after the step). The state
    keeps ``pairs`` and the loss and gradient at the returned theta, tagged with the
    problem's ``uid``: the next step on the same problem reuses them, so a full-batch
    step costs one gradient evaluation when the unit step is accepted.
    """

    divergence_hint = "restart from the last good parameters"

    def __init__(self, history=10, max_line_search=20, c1=1e-4, c2=0.9):
        self.history = positive_int("history", history)
        self.max_line_search = positive_int("max_line_search", max_line_search)
        self.c1, self.c2 = positive("c1", c1), positive("c2", c2)
        if not self.c1 < self.c2 < 1:
            raise ArgumentError(f"need 0 < c1 < c2 < 1, got c1={c1}, c2={c2}")

    def init(self, theta):
        return LBFGSState(0, (), None)

    def _step(self, problem, theta, state):
        point = state.point
        if point is not None and point[0] == problem.uid and np.array_equal(point[1], theta):
            loss, gradient = point[2], point[3]
        else:
            loss, gradient = problem.value_and_grad(theta)
        pairs = list(state.pairs)
        direction = -two_loop_recursion(gradient, pairs)
        result = self._line_search(problem, theta, loss, gradient, direction)
        evaluations, steepest = result.evaluations, not result.success and bool(pairs)
        if steepest:
            pairs, direction = [], -gradient
            result = self._line_search(problem, theta, loss, gradient, direction)
            evaluations += result.evaluations
        if result.success:
            s, y = result.step_size * direction, result.gradient - gradient
            if s @ y > np.finfo(float).eps * np.linalg.norm(s) * np.linalg.norm(y):
                pairs = (pairs + [(s, y)])[-self.history:]
            theta = theta + s
        info = StepInfo(loss=loss, grad_norm=norm(gradient), loss_after=result.loss,
                        accepted=result.success, step_size=result.step_size,
                        extras={"line_search_evals": evaluations, "steepest_descent": steepest,
                                "memory": len(pairs)})
        point = (problem.uid, np.array(theta), result.loss, result.gradient)
        return theta, LBFGSState(state.step, tuple(pairs), point), info

    def _line_search(self, problem, theta, loss, gradient, direction):
        return wolfe_line_search(problem.value_and_grad, theta, loss, gradient, direction,
                                 self.c1, self.c2, self.max_line_search)
