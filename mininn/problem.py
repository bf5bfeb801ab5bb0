"""A training problem: a model, a loss and a data set bound together.

The objective is ``L(theta) = loss(model.forward(theta, X), Y) + l2/2 * |theta|^2``,
a scalar function of the flat parameter vector theta of shape (N,). Every
evaluation is counted in ``problem.counts`` (shared with minibatches and
subsets made from the problem), so optimizers can be compared at equal work.
"""

import itertools
from collections import Counter

import numpy as np
from autograd import value_and_grad as autograd_value_and_grad

from . import curvature
from .curvature import mlp_passes
from .errors import ArgumentError, NonFiniteError, ShapeError, TooLargeError, UnsupportedModelError
from .losses import get_loss
from .validation import finite_array, integer, non_negative, norm, random_seed, vector

#: Default largest N for which ``hessian()`` and ``ggn()`` form a dense N x N matrix
#: (4000 parameters: 128 MB of float64, about 2x that at peak while assembling).
DENSE_LIMIT = 4000

#: The evaluations a Problem counts in ``problem.counts``, one kind per method:
#: ``value`` (a forward pass), ``grad`` (``value_and_grad``: a forward and a reverse
#: pass), ``hvp`` and ``ggn_vp`` (one curvature product each, also through the
#: operators and, N of them, through a dense matrix), ``kfac_factors`` and
#: ``fisher_diagonal`` (about one gradient each) and ``ggn_diagonal`` (one forward pass
#: and a reverse pass per output, or per sample). ``History`` keeps one series per kind.
EVALUATION_KINDS = ("value", "grad", "hvp", "ggn_vp", "kfac_factors", "fisher_diagonal", "ggn_diagonal")

#: The book's one unit of work, gradient-equivalents: what one evaluation of each kind costs,
#: counting a forward and a reverse pass over the problem's examples as 1. A loss value is a
#: forward pass (1/2); a curvature product, K-FAC's factors and the Fisher diagonal each cost
#: about one gradient; the Gauss-Newton diagonal is counted per call although its exact form
#: takes one reverse pass per output (see :meth:`Problem.ggn_diagonal`).
WORK_WEIGHTS = {"value": 0.5, "grad": 1.0, "hvp": 1.0, "ggn_vp": 1.0, "kfac_factors": 1.0,
                "fisher_diagonal": 1.0, "ggn_diagonal": 1.0}


def gradient_equivalents(counts):
    """The work of the evaluations in ``counts`` (a mapping kind -> number), in gradient-equivalents."""
    return sum(WORK_WEIGHTS[kind] * number for kind, number in counts.items())

_problem_ids = itertools.count()


class Problem:
    """Objective, gradient and curvature products of a model on fixed data.

    Parameters
    ----------
    model : MLP or object
        Anything with ``forward(theta, X)``, ``num_params`` and ``check_inputs(X)``.
    loss : str or Loss
        "mse", "sigmoid_cross_entropy", "softmax_cross_entropy" or a Loss instance.
    X : ndarray of shape (n, d_in)
        Inputs, one example per row.
    Y : ndarray of shape (n, d_out)
        Targets in the loss's domain (``loss.check_targets``): finite for mse, in [0, 1]
        for sigmoid cross-entropy, rows of probabilities (one-hot) for softmax cross-entropy.
    l2 : float
        Weight of the L2 penalty ``l2/2 * |theta|^2`` (adds ``l2 * I`` to the curvature).
    dense_limit : int
        Largest N for which dense Hessian and Gauss-Newton matrices are formed.
    counts : Counter, optional
        The counter of evaluations to share (minibatches share their parent's);
        a new one when omitted. Keys are the ``EVALUATION_KINDS``.

    Raises
    ------
    mininn.errors.ShapeError
        If X has no rows, or X, Y and the model do not fit together.
    mininn.errors.NonFiniteError
        If X or Y contain NaN or infinity, or the loss of all-zero outputs overflows on Y.
    mininn.errors.TargetError
        If Y lies outside the loss's domain, where the loss is unbounded below.
    """

    def __init__(self, model, loss, X, Y, l2=0.0, dense_limit=DENSE_LIMIT, counts=None, fast_path=None):
        self.model, self.loss = model, get_loss(loss)
        self.X, self.Y = _checked_data(model, self.loss, X, Y)
        self.l2 = non_negative("l2", l2)
        self.dense_limit = integer("dense_limit", dense_limit, 0)
        self.counts = Counter() if counts is None else counts
        # A subclass that redefines the objective keeps autograd: the passes compute the MLP's own.
        supported = mlp_passes.is_supported(model) and type(self).objective is Problem.objective
        if fast_path and not supported:
            raise UnsupportedModelError(f"fast_path=True needs an MLP with activations from "
                                        f"mininn.activations, got {model!r}")
        self.fast_path = supported if fast_path is None else bool(fast_path)
        self._last_trace = None
        #: A number no other Problem of this process has: lets an optimizer recognise the
        #: problem of its previous step without keeping a reference to it.
        self.uid = next(_problem_ids)

    def __repr__(self):
        return (f"Problem({self.model!r}, {self.loss.name}, n={self.num_examples}, "
                f"N={self.num_params}, l2={self.l2})")

    @property
    def num_params(self):
        return self.model.num_params

    @property
    def num_examples(self):
        return self.X.shape[0]

    # -- the objective -------------------------------------------------------------

    def outputs(self, theta):
        """Network outputs on the problem's inputs, shape (n, d_out)."""
        return self.model.forward(theta, self.X)

    def objective(self, theta):
        """The scalar objective, written for autograd (no counting, no checks)."""
        value = self.loss.value(self.model.forward(theta, self.X), self.Y)
        if self.l2:
            value = value + 0.5 * self.l2 * (theta @ theta)
        return value

    def value(self, theta):
        """L(theta), a float (one forward pass, kept on the fast path for a gradient at the same theta)."""
        theta = self.check_parameters(theta)
        self.counts["value"] += 1
        if self.fast_path:
            return mlp_passes.value(self._trace(theta), self.loss, self.Y, self.l2)
        return float(self.objective(theta))

    def value_and_grad(self, theta):
        """(L(theta), gradient of shape (N,)) from one forward and one reverse pass."""
        theta = self.check_parameters(theta)
        self.counts["grad"] += 1
        if self.fast_path:
            return mlp_passes.value_and_gradient(self._trace(theta), self.loss, self.Y, self.l2)
        value, gradient = autograd_value_and_grad(self.objective)(theta)
        return float(value), gradient

    def grad(self, theta):
        """Gradient of L at theta, shape (N,)."""
        return self.value_and_grad(theta)[1]

    # -- curvature products ----------------------------------------------------------

    def hvp(self, theta, v, method=None):
        """Hessian of L at theta times v, shape (N,) (Pearlmutter's product).

        ``method`` None uses the fast path's R-backprop where it applies and autograd's
        ``curvature.DEFAULT_HVP_METHOD`` otherwise; "fwd_rev" or "rev_rev" ask for that
        autograd method (see :data:`mininn.curvature.hessian.HVP_METHODS`).
        """
        theta, v = self.check_parameters(theta), self._check_vector("v", v)
        self.counts["hvp"] += 1
        if method is None and self.fast_path:
            return mlp_passes.hessian_vector_product(self._trace(theta), self.loss, self.Y, v, self.l2)
        method = curvature.DEFAULT_HVP_METHOD if method is None else method
        return curvature.hessian_vector_product(self.objective, theta, v, method)

    def ggn_vp(self, theta, v):
        """Gauss-Newton matrix of L at theta times v, ``J^T H_L J v + l2 v``, shape (N,)."""
        theta, v = self.check_parameters(theta), self._check_vector("v", v)
        self.counts["ggn_vp"] += 1
        if self.fast_path:
            return mlp_passes.gauss_newton_vector_product(self._trace(theta), self.loss, self.Y, v, self.l2)
        product = curvature.gauss_newton_vector_product(
            self.outputs, self._output_hessian_vp, theta, v)
        return product + self.l2 * v

    def hvp_operator(self, theta):
        """A counted function v -> H v at theta that reuses one linearisation (for CG)."""
        theta = self.check_parameters(theta)
        if self.fast_path:
            product = mlp_passes.hessian_vector_operator(self._trace(theta), self.loss, self.Y, self.l2)
        else:
            product = curvature.hessian_vector_operator(self.objective, theta)
        return self._counted("hvp", product)

    def ggn_operator(self, theta):
        """A counted function v -> G v at theta that reuses one linearisation (for CG)."""
        theta = self.check_parameters(theta)
        if self.fast_path:
            return self._counted("ggn_vp", mlp_passes.gauss_newton_operator(
                self._trace(theta), self.loss, self.Y, self.l2))
        product = curvature.gauss_newton_operator(self.outputs, self._output_hessian_vp, theta)
        return self._counted("ggn_vp", lambda v: product(v) + self.l2 * v)

    # -- per-example curvature of an MLP ------------------------------------------------

    def kfac_factors(self, theta, fisher="sampled", rng=0):
        """The K-FAC factors ``(A, G)`` of every layer on this problem's examples.

        See :func:`mininn.curvature.kfac.kfac_factors` for ``fisher`` and ``rng``; the L2
        term is not included. Counted as one ``"kfac_factors"`` (about one gradient).
        """
        theta = self.check_parameters(theta)
        self.counts["kfac_factors"] += 1
        return curvature.kfac_factors(self.model, theta, self.X, self.loss, self.Y, fisher, rng)

    def empirical_fisher_diagonal(self, theta):
        """Diagonal of the empirical Fisher on this problem's examples, shape (N,), without the L2 term.

        See :func:`mininn.curvature.diagonals.empirical_fisher_diagonal`. Counted as one
        ``"fisher_diagonal"`` (about one gradient).
        """
        theta = self.check_parameters(theta)
        self.counts["fisher_diagonal"] += 1
        return curvature.empirical_fisher_diagonal(self.model, theta, self.X, self.loss, self.Y)

    def ggn_diagonal(self, theta, samples=None, rng=0):
        """Diagonal of the Gauss-Newton matrix on this problem's examples, shape (N,), with the L2 term.

        Equal to ``np.diag(problem.ggn(theta))``, which includes ``l2 I`` (unlike
        :meth:`empirical_fisher_diagonal`). See :func:`mininn.curvature.diagonals.ggn_diagonal` for
        ``samples`` (None: exact; s: a Monte Carlo estimate from s sampled targets) and
        ``rng``. Counted as one ``"ggn_diagonal"``: a forward pass and one reverse pass
        per output (per sample).
        """
        theta = self.check_parameters(theta)
        self.counts["ggn_diagonal"] += 1
        diagonal = curvature.ggn_diagonal(self.model, theta, self.X, self.loss, self.Y, samples, rng)
        return diagonal + self.l2

    # -- dense matrices --------------------------------------------------------------

    def hessian(self, theta):
        """Dense Hessian of L at theta, shape (N, N); refused above ``dense_limit``."""
        theta = self.check_parameters(theta)
        self._check_dense("hessian")
        self.counts["hvp"] += self.num_params
        return curvature.hessian(self.objective, theta)

    def ggn(self, theta):
        """Dense Gauss-Newton matrix of L at theta, shape (N, N); refused above ``dense_limit``."""
        theta = self.check_parameters(theta)
        self._check_dense("ggn")
        product = self.ggn_operator(theta)
        return curvature.dense_from_operator(product, self.num_params)

    # -- data ----------------------------------------------------------------------------

    def subset(self, indices):
        """The same problem on the examples ``indices``; evaluations count in the same counter.

        ``indices`` is a non-empty 1-D array of integers in ``[0, n)``.
        """
        indices = np.asarray(indices)
        if indices.ndim != 1 or len(indices) == 0:
            raise ShapeError("indices must be a non-empty 1-D array of example indices")
        if not np.issubdtype(indices.dtype, np.integer):
            raise ArgumentError(f"indices must be integers, got dtype {indices.dtype}; "
                                "for a boolean mask pass np.flatnonzero(mask)")
        if indices.min() < 0 or indices.max() >= self.num_examples:
            raise ArgumentError(f"indices must lie in [0, {self.num_examples}) (the problem's examples), "
                                f"got values from {indices.min()} to {indices.max()}")
        return Problem(self.model, self.loss, self.X[indices], self.Y[indices],
                       self.l2, self.dense_limit, counts=self.counts, fast_path=self.fast_path)

    def minibatch(self, size, seed=0):
        """The problem on ``size`` examples drawn without replacement with ``default_rng(seed)``."""
        size = integer("minibatch size", size, 1, self.num_examples)
        rng = np.random.default_rng(random_seed("seed", seed))
        return self.subset(np.sort(rng.choice(self.num_examples, size=size, replace=False)))

    # -- helpers ------------------------------------------------------------------------

    def _output_hessian_vp(self, outputs, U):
        return self.loss.output_hessian_vp(outputs, self.Y, U)

    def _trace(self, theta):
        """The fast path's forward pass at theta: the last one if it was at the same theta."""
        last = self._last_trace
        if last is None or not np.array_equal(last.theta, theta):
            last = self._last_trace = mlp_passes.forward(self.model, np.array(theta), self.X)
        return last

    def _counted(self, key, product):
        def counted(v):
            self.counts[key] += 1
            return product(self._check_vector("v", v))
        return counted

    def check_parameters(self, theta):
        """theta as a float64 vector of shape (N,), or ShapeError / NonFiniteError naming the fix."""
        return self._check_vector("theta", theta)

    def check_finite_loss(self, theta):
        """L(theta) as a float, or a NonFiniteError naming the scale of the data if it is not finite.

        Not counted in ``counts``: :func:`~mininn.train.fit` calls it once on the starting parameters,
        so that data that overflow float64 arithmetic are refused before training starts.
        """
        theta = self.check_parameters(theta)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is what this reports
            value = float(self.objective(theta))
            if np.isfinite(value):
                return value
            raise NonFiniteError(
                f"the loss at theta is {value}: the data or the parameters are too "
                f"large for float64 arithmetic (max |X| = {np.max(np.abs(self.X)):.3g}, max |Y| = "
                f"{np.max(np.abs(self.Y)):.3g}, |theta| = {norm(theta):.3g}); standardise the inputs and "
                "the targets (subtract each column's mean, divide by its standard deviation) or start "
                "from smaller parameters (model.init)")

    def _check_vector(self, name, value):
        return vector(name, value, self.num_params,
                      fix="restart from the last finite parameters",
                      shape_hint=f"the model has {self.num_params} parameters (theta from model.init)")

    def _check_dense(self, what):
        if self.num_params > self.dense_limit:
            gib = self.num_params**2 * 8 / 2**30
            raise TooLargeError(
                f"a dense {what} of this problem has {self.num_params}^2 entries ({gib:.2f} GiB); "
                f"the limit is N = {self.dense_limit}. Use the matrix-free products "
                "(hvp, ggn_vp, hvp_operator, ggn_operator) or raise dense_limit knowingly"
            )


def _checked_data(model, loss, X, Y):
    """X and Y as float64 arrays that ``model`` and ``loss`` can train on, or the error naming the fix."""
    X = finite_array("X", X, "clean or impute the inputs before building the problem")
    Y = finite_array("Y", Y, "clean the targets before building the problem")
    model.check_inputs(X)
    if X.shape[0] == 0:
        raise ShapeError(f"X has shape {X.shape}: a problem needs at least one example (a row of X); "
                         "check how the data were loaded or split")
    expected = (X.shape[0], getattr(model, "output_dim", Y.shape[-1]))
    if Y.shape != expected:
        raise ShapeError(
            f"Y has shape {Y.shape}, but X has {X.shape[0]} rows and the model {expected[1]} "
            f"outputs: Y must be {expected} (reshape a vector with Y.reshape(-1, 1); "
            "one-hot encode labels with mininn.data.one_hot)"
        )
    loss.check_targets(Y)
    with np.errstate(over="ignore", invalid="ignore"):
        zero_output_loss = loss.value(np.zeros_like(Y), Y)
    if not np.isfinite(zero_output_loss):
        raise NonFiniteError(
            f"the {loss.name} loss of outputs that are all 0 is {zero_output_loss} on these targets "
            f"(max |Y| = {np.max(np.abs(Y)):.3g}): they are too large for float64 arithmetic; standardise "
            "the targets (subtract each column's mean, divide by its standard deviation)")
    return X, Y
