"""Hessian-free optimisation (Martens 2010; Martens & Sutskever 2012).

Each step solves the damped Newton system ``(B + lambda I) d = -g`` approximately
by preconditioned conjugate gradients (CG), where g is the gradient and B the
Gauss-Newton matrix G (or the Hessian H) of the objective, used only through
matrix-vector products. Every ingredient of Martens' method can be switched off,
for ablations:

- damping: Tikhonov ``lambda I`` adapted by the Levenberg-Marquardt rule on the
  reduction ratio ``rho`` (``adapt_damping``; ``damping=0`` removes it);
- warm start: CG starts from ``warm_start`` times the previous CG solution;
- Martens' stopping test on the CG quadratic (``martens_stop``), at most ``cg_max_iters``;
- diagonal preconditioner ``(diag F + l2 + lambda)^0.75`` (``preconditioner``), see
  :meth:`mininn.problem.Problem.empirical_fisher_diagonal`;
- curvature on a minibatch smaller than the gradient batch (``curvature_batch_size``);
- CG-backtracking over the iterates stored at ``i = ceil(5 * 1.3^j)`` (``backtracking``);
- Armijo backtracking line search on the chosen step (``line_search``).

Choices where the papers leave room: CG-backtracking, ``rho`` and the line search
all measure the objective on the gradient batch (the ``problem`` passed to
``step``), not on the curvature minibatch as Martens does, so one evaluation
serves all three and every accepted step lowers the loss being minimised.
``rho`` compares that change with the undamped model ``q(d) = g.d + d.B.d / 2``,
B on the curvature batch. The next CG run starts from the final CG solution,
not from the backtracked one (as in Martens 2010).
"""

from typing import NamedTuple

import numpy as np

from ..errors import NonFiniteError
from ..linalg import conjugate_gradient
from ..validation import in_unit_interval, non_negative, norm, one_of, positive_int, random_seed
from .base import Optimizer, StepInfo
from .damping import decreases, levenberg_marquardt, reduction_ratio, trial_loss

CURVATURES = ("ggn", "hessian")

#: Exponent of the diagonal preconditioner (Martens 2010).
PRECONDITIONER_EXPONENT = 0.75

#: Sufficient-decrease constant c of the Armijo line search.
ARMIJO_C = 1e-2

#: Factor by which the line search shrinks the step size.
SHRINK = 0.8

#: Most step sizes the line search tries (the smallest is 0.8^59, about 2e-6).
MAX_LINE_SEARCH = 60


class HessianFreeState(NamedTuple):
    step: int
    damping: float
    #: the last CG solution, for the warm start
    direction: np.ndarray
    curvature_seed: int


class HessianFree(Optimizer):
    """Hessian-free optimisation: truncated preconditioned CG on the damped curvature system.

    A step computes the gradient g on ``problem``, runs CG on
    ``(B + lambda I) d = -g`` with B on the curvature batch, picks a step d by
    CG-backtracking, and takes ``theta + alpha d`` with the step size alpha from
    an Armijo line search (``L(theta + alpha d) <= L(theta) + 0.01 alpha g.d``,
    alpha = 1, 0.8, 0.8^2, ...). A step is rejected, theta kept exactly and
    lambda multiplied by 3/2, when d is not a descent direction (for example
    when CG on an indefinite Hessian stops at once) or no trial step size
    lowers the loss enough (or at all: non-finite losses count as infinite).
    After an accepted step lambda is multiplied by 3/2 if rho < 1/4 and by 2/3
    if rho > 3/4, where ``rho = (L(theta + d) - L(theta)) / (g.d + d.B.d / 2)``.

    Parameters
    ----------
    curvature : str
        "ggn" (the Gauss-Newton matrix, positive semi-definite) or "hessian"
        (may be indefinite: CG then stops at negative curvature and the last
        iterate before it is used).
    damping : float
        Initial lambda, at least 0.
    cg_max_iters : int
        Most CG iterations per step.
    martens_stop : bool
        Stop CG by Martens' relative-progress test (epsilon 5e-4); otherwise CG
        runs until the relative residual is 1e-10 or ``cg_max_iters``.
    warm_start : float or None
        CG starts from this multiple of the previous CG solution; 0 or None
        starts from zero.
    backtracking : bool
        Choose among stored CG iterates: starting from the last, go back while
        the loss at ``theta + x_i`` keeps decreasing. Otherwise use the last iterate.
    preconditioner : bool
        Use the diagonal preconditioner ``(diag F + l2 + lambda)^0.75`` with F the
        empirical Fisher on the gradient batch
        (:meth:`~mininn.problem.Problem.empirical_fisher_diagonal`; needs an MLP).
        This is Martens' sum over examples of squared per-example gradients,
        divided by n: the mean loss's G and lambda are n times smaller than for
        his summed loss, and a constant factor does not change PCG. The square of
        the batch gradient is not used: it is at most this mean of squares and
        vanishes near a minimum, where the per-example gradients do not. Zero
        entries (with lambda = l2 = 0) are raised to 1e-10 times the largest.
    curvature_batch_size : int or None
        Curvature products on a fresh random minibatch of this many examples of
        ``problem`` each step; None (or a size of at least the problem's) uses
        the whole problem.
    line_search : bool
        Armijo backtracking on the step size; otherwise only alpha = 1 is tried
        and the step is accepted if it lowers the loss.
    adapt_damping : bool
        Adapt lambda by the Levenberg-Marquardt rule, within ``DAMPING_RANGE``;
        otherwise lambda stays fixed.
    seed : int
        Seed of the first curvature minibatch; step t uses seed + t.

    Notes
    -----
    ``info.step_size`` is alpha (0 when rejected), ``info.damping`` the lambda of this
    step and ``info.rho`` NaN when the model predicts no decrease. ``info`` adds
    ``cg_iterations``, ``cg_reason`` (see :class:`~mininn.linalg.CGResult`),
    ``backtrack_index`` (the CG iteration whose iterate was chosen) and
    ``curvature_products`` (the products with B this step, including the one for
    rho). ``state`` holds ``damping`` (lambda for the next step), ``direction`` (the
    last CG solution) and ``curvature_seed``.
    """

    divergence_hint = "raise the damping"

    def __init__(self, curvature="ggn", damping=1.0, cg_max_iters=250, martens_stop=True,
                 warm_start=0.95, backtracking=True, preconditioner=True, curvature_batch_size=None,
                 line_search=True, adapt_damping=True, seed=0):
        self.curvature = one_of("curvature", curvature, CURVATURES)
        self.damping = non_negative("damping", damping)
        self.cg_max_iters = positive_int("cg_max_iters", cg_max_iters)
        self.martens_stop = bool(martens_stop)
        self.warm_start = in_unit_interval("warm_start", warm_start or 0.0)
        self.backtracking = bool(backtracking)
        self.preconditioner = bool(preconditioner)
        self.curvature_batch_size = (None if curvature_batch_size is None
                                     else positive_int("curvature_batch_size", curvature_batch_size))
        self.line_search = bool(line_search)
        self.adapt_damping = bool(adapt_damping)
        self.seed = random_seed("seed", seed)

    def init(self, theta):
        return HessianFreeState(0, self.damping, np.zeros_like(theta, dtype=float), self.seed)

    def _step(self, problem, theta, state):
        loss, gradient = problem.value_and_grad(theta)
        damping = state.damping
        batch = self._curvature_batch(problem, state.curvature_seed)
        key = "ggn_vp" if self.curvature == "ggn" else "hvp"
        products_before = problem.counts[key]
        product = batch.ggn_operator(theta) if self.curvature == "ggn" else batch.hvp_operator(theta)
        result = conjugate_gradient(
            lambda v: product(v) + damping * v, -gradient,
            x0=self.warm_start * state.direction if self.warm_start and state.step else None,
            preconditioner=self._preconditioner(problem, theta, damping),
            max_iters=self.cg_max_iters, martens_stop=self.martens_stop,
            store_iterates=self.backtracking)

        def loss_at(step):
            return trial_loss(problem.value, theta + step)

        index, direction, full_step_loss = self._backtrack(result, loss_at)
        slope = gradient @ direction
        rho = reduction_ratio(loss, full_step_loss, slope + 0.5 * direction @ product(direction))
        step_size, loss_after = (self._step_size(loss_at, direction, loss, slope, full_step_loss)
                                 if slope < 0 else (0.0, loss))
        accepted = step_size > 0
        info = StepInfo(
            loss=loss, grad_norm=norm(gradient), loss_after=loss_after, accepted=accepted,
            step_size=step_size, damping=damping, rho=rho,
            extras={"cg_iterations": result.iterations, "cg_reason": result.reason,
                    "backtrack_index": index,
                    "curvature_products": problem.counts[key] - products_before})
        state = state._replace(damping=self._next_damping(damping, accepted, rho), direction=result.x,
                               curvature_seed=state.curvature_seed + 1)
        return (theta + step_size * direction if accepted else theta), state, info

    def _curvature_batch(self, problem, seed):
        size = self.curvature_batch_size
        if size is None or size >= problem.num_examples:
            return problem
        return problem.minibatch(size, seed)

    def _preconditioner(self, problem, theta, damping):
        if not self.preconditioner:
            return None
        with np.errstate(over="ignore"):  # an overflow is refused just below, with its fix
            diagonal = problem.empirical_fisher_diagonal(theta) + problem.l2 + damping
        if not np.all(np.isfinite(diagonal)):
            raise NonFiniteError(
                "the empirical Fisher diagonal of the preconditioner overflowed (squared per-example "
                "gradients beyond the float range): standardise the inputs and targets, or use "
                "HessianFree(preconditioner=False)")
        floor = 1e-10 * diagonal.max() if diagonal.max() > 0 else 1.0
        return np.maximum(diagonal, floor) ** PRECONDITIONER_EXPONENT

    def _backtrack(self, result, loss_at):
        """(CG iteration, iterate, loss there) chosen by Martens' CG-backtracking."""
        candidates = result.iterates if self.backtracking else [(result.iterations, result.x)]
        index, direction = candidates[-1]
        best = loss_at(direction)
        for earlier_index, earlier in reversed(candidates[:-1]):
            earlier_loss = loss_at(earlier)
            if earlier_loss >= best:
                break
            index, direction, best = earlier_index, earlier, earlier_loss
        return index, direction, best

    def _step_size(self, loss_at, direction, loss, slope, full_step_loss):
        """(alpha, loss at theta + alpha d) by the Armijo search, or (0, loss) if none is found."""
        if not self.line_search:
            return (1.0, full_step_loss) if decreases(loss, full_step_loss) else (0.0, loss)
        for k in range(MAX_LINE_SEARCH):
            alpha = SHRINK**k
            trial = loss_at(alpha * direction) if k else full_step_loss
            if decreases(loss, trial, ARMIJO_C * alpha * slope):
                return alpha, trial
        return 0.0, loss

    def _next_damping(self, damping, accepted, rho):
        if not self.adapt_damping:
            return damping
        return levenberg_marquardt(damping, rho if accepted else np.nan)
