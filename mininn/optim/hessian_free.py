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
  :func:`empirical_fisher_diagonal`;
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

import numpy as np
from autograd import grad

from ..errors import UnknownNameError
from ..linalg import conjugate_gradient
from ..nn import MLP
from .base import Optimizer, in_unit_interval, levenberg_marquardt, trial_loss

CURVATURES = ("ggn", "hessian")

#: Exponent of the diagonal preconditioner (Martens 2010).
PRECONDITIONER_EXPONENT = 0.75

#: Sufficient-decrease constant c of the Armijo line search.
ARMIJO_C = 1e-2

#: Factor by which the line search shrinks the step size.
SHRINK = 0.8

#: Most step sizes the line search tries (the smallest is 0.8^59, about 2e-6).
MAX_LINE_SEARCH = 60


def empirical_fisher_diagonal(problem, theta):
    """Diagonal of the empirical Fisher ``(1/n) sum_i grad l_i * grad l_i`` of an MLP problem.

    ``l_i`` is example i's loss, so ``grad l_i`` is n times its share of the
    gradient of the mean loss; the L2 term is left out. The per-example
    gradients are never formed: for a dense layer ``z = a W + b`` the gradient
    of ``l_i`` with respect to W is the outer product of the input ``a_i`` and
    ``delta_i = dl_i/dz_i``, so the mean of its squares is
    ``(a * a)^T (delta * delta) / n``. All the ``delta_i`` come from one
    reverse pass through the pre-activations, so this costs about one gradient
    (counted as ``problem.counts["fisher_diagonal"]``).

    Parameters
    ----------
    problem : mininn.problem.Problem
        A problem whose model is a :class:`~mininn.nn.MLP`.
    theta : ndarray of shape (N,)
        Parameters.

    Returns
    -------
    ndarray of shape (N,)
        The non-negative diagonal, in theta's layout.
    """
    model = problem.model
    if not isinstance(model, MLP):
        raise TypeError(
            f"the per-example gradients behind the preconditioner need a mininn.MLP, got "
            f"{type(model).__name__}; use HessianFree(preconditioner=False)")
    problem.counts["fisher_diagonal"] += 1
    n = problem.num_examples
    inputs, _ = model.forward_trace(theta, problem.X)
    outputs, pullback = model.preactivation_pullback(theta, problem.X)
    output_gradients = n * grad(lambda F: problem.loss.value(F, problem.Y))(outputs)
    deltas = pullback(output_gradients)
    return model.layout.flatten([
        ((a**2).T @ delta**2 / n, np.sum(delta**2, axis=0) / n) for a, delta in zip(inputs, deltas)
    ])


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
        empirical Fisher on the gradient batch (``empirical_fisher_diagonal`` of
        this module; needs an MLP). This is Martens' sum over examples of squared per-example
        gradients, divided by n: the mean loss's G and lambda are n times smaller
        than for his summed loss, and a constant factor does not change PCG. The
        square of the batch gradient is not used: it is at most this mean of
        squares and vanishes near a minimum, where the per-example gradients do
        not. Zero entries (with lambda = l2 = 0) are raised to 1e-10 times the largest.
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
    ``info`` holds ``loss`` and ``grad_norm`` at the incoming theta,
    ``loss_after`` (the loss at the returned theta), ``accepted``,
    ``step_size`` (alpha; 0 when rejected), ``damping`` (the lambda of this
    step), ``rho`` (NaN when the model predicts no decrease), ``cg_iterations``,
    ``cg_reason`` (see :class:`~mininn.linalg.CGResult`), ``backtrack_index``
    (the CG iteration whose iterate was chosen) and ``curvature_products`` (the
    products with B this step, including the one for rho). ``state`` holds
    ``damping`` (lambda for the next step), ``direction`` (the last CG
    solution) and ``curvature_seed``.
    """

    def __init__(self, curvature="ggn", damping=1.0, cg_max_iters=250, martens_stop=True,
                 warm_start=0.95, backtracking=True, preconditioner=True, curvature_batch_size=None,
                 line_search=True, adapt_damping=True, seed=0):
        if curvature not in CURVATURES:
            raise UnknownNameError(f"unknown curvature {curvature!r}; choose one of {CURVATURES}")
        if not damping >= 0:
            raise ValueError(f"damping must be >= 0, got {damping!r}")
        if int(cg_max_iters) != cg_max_iters or cg_max_iters < 1:
            raise ValueError(f"cg_max_iters must be a positive integer, got {cg_max_iters!r}")
        if curvature_batch_size is not None and (
                int(curvature_batch_size) != curvature_batch_size or curvature_batch_size < 1):
            raise ValueError(f"curvature_batch_size must be None or a positive integer, "
                             f"got {curvature_batch_size!r}")
        self.curvature = curvature
        self.damping = float(damping)
        self.cg_max_iters = int(cg_max_iters)
        self.martens_stop = bool(martens_stop)
        self.warm_start = in_unit_interval("warm_start", warm_start or 0.0)
        self.backtracking = bool(backtracking)
        self.preconditioner = bool(preconditioner)
        self.curvature_batch_size = curvature_batch_size
        self.line_search = bool(line_search)
        self.adapt_damping = bool(adapt_damping)
        self.seed = int(seed)

    def init(self, theta):
        return {"step": 0, "damping": self.damping, "direction": np.zeros_like(theta, dtype=float),
                "curvature_seed": self.seed}

    def step(self, problem, theta, state):
        loss, gradient = problem.value_and_grad(theta)
        damping = state["damping"]
        batch = self._curvature_batch(problem, state["curvature_seed"])
        key = "ggn_vp" if self.curvature == "ggn" else "hvp"
        products_before = problem.counts[key]
        product = batch.ggn_operator(theta) if self.curvature == "ggn" else batch.hvp_operator(theta)
        result = conjugate_gradient(
            lambda v: product(v) + damping * v, -gradient,
            x0=self.warm_start * state["direction"] if self.warm_start and state["step"] else None,
            preconditioner=self._preconditioner(problem, theta, damping),
            max_iters=self.cg_max_iters, martens_stop=self.martens_stop,
            store_iterates=self.backtracking)

        def loss_at(step):
            return trial_loss(problem.value, theta + step)

        index, direction, full_step_loss = self._backtrack(result, loss_at)
        slope = gradient @ direction
        predicted = slope + 0.5 * direction @ product(direction)
        rho = (full_step_loss - loss) / predicted if predicted < 0 else np.nan
        step_size, loss_after = (self._step_size(loss_at, direction, loss, slope, full_step_loss)
                                 if slope < 0 else (0.0, loss))
        accepted = step_size > 0
        info = {
            "loss": loss, "grad_norm": float(np.linalg.norm(gradient)), "loss_after": loss_after,
            "accepted": accepted, "step_size": step_size, "damping": damping, "rho": rho,
            "cg_iterations": result.iterations, "cg_reason": result.reason,
            "backtrack_index": index, "curvature_products": problem.counts[key] - products_before,
        }
        state = {"step": state["step"] + 1, "damping": self._next_damping(damping, accepted, rho),
                 "direction": result.x, "curvature_seed": state["curvature_seed"] + 1}
        return (theta + step_size * direction if accepted else theta), state, info

    def _curvature_batch(self, problem, seed):
        size = self.curvature_batch_size
        if size is None or size >= problem.num_examples:
            return problem
        return problem.minibatch(size, seed)

    def _preconditioner(self, problem, theta, damping):
        if not self.preconditioner:
            return None
        diagonal = empirical_fisher_diagonal(problem, theta) + problem.l2 + damping
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
            return (1.0, full_step_loss) if full_step_loss < loss else (0.0, loss)
        for k in range(MAX_LINE_SEARCH):
            alpha = SHRINK**k
            trial = loss_at(alpha * direction) if k else full_step_loss
            if trial <= loss + ARMIJO_C * alpha * slope:
                return alpha, trial
        return 0.0, loss

    def _next_damping(self, damping, accepted, rho):
        if not self.adapt_damping:
            return damping
        return levenberg_marquardt(damping, rho if accepted else np.nan)
