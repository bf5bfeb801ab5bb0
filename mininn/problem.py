"""A training problem: a model, a loss and a data set bound together.

The objective is ``L(theta) = loss(model.forward(theta, X), Y) + l2/2 * |theta|^2``,
a scalar function of the flat parameter vector theta of shape (N,). Every
evaluation is counted in ``problem.counts`` (shared with minibatches and
subsets made from the problem), so optimizers can be compared at equal work.
"""

from collections import Counter

import numpy as np
from autograd import value_and_grad as autograd_value_and_grad

from . import curvature
from .errors import NonFiniteError, ShapeError, TooLargeError
from .losses import get_loss

#: Default largest N for which ``hessian()`` and ``ggn()`` form a dense N x N matrix
#: (4000 parameters: 128 MB of float64, about 2x that at peak while assembling).
DENSE_LIMIT = 4000


def _finite_array(name, value, fix):
    array = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(array)):
        raise NonFiniteError(f"{name} contains NaN or infinity; {fix}")
    return array


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
        Targets (one-hot rows for softmax cross-entropy).
    l2 : float
        Weight of the L2 penalty ``l2/2 * |theta|^2`` (adds ``l2 * I`` to the curvature).
    dense_limit : int
        Largest N for which dense Hessian and Gauss-Newton matrices are formed.
    """

    def __init__(self, model, loss, X, Y, l2=0.0, dense_limit=DENSE_LIMIT, counts=None):
        X = _finite_array("X", X, "clean or impute the inputs before building the problem")
        Y = _finite_array("Y", Y, "clean the targets before building the problem")
        model.check_inputs(X)
        expected = (X.shape[0], getattr(model, "output_dim", Y.shape[-1]))
        if Y.shape != expected:
            raise ShapeError(
                f"Y has shape {Y.shape}, but X has {X.shape[0]} rows and the model {expected[1]} "
                f"outputs: Y must be {expected} (reshape a vector with Y.reshape(-1, 1); "
                "one-hot encode labels with mininn.data.one_hot)"
            )
        if not 0 <= l2 < np.inf:
            raise ValueError(f"l2 must be finite and >= 0, got {l2}")
        self.model, self.loss, self.X, self.Y = model, get_loss(loss), X, Y
        self.l2, self.dense_limit = float(l2), int(dense_limit)
        self.counts = Counter() if counts is None else counts

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
        """L(theta), a float."""
        theta = self._check_vector("theta", theta)
        self.counts["value"] += 1
        return float(self.objective(theta))

    def value_and_grad(self, theta):
        """(L(theta), gradient of shape (N,)) from one forward and one reverse pass."""
        theta = self._check_vector("theta", theta)
        self.counts["grad"] += 1
        value, gradient = autograd_value_and_grad(self.objective)(theta)
        return float(value), gradient

    def grad(self, theta):
        """Gradient of L at theta, shape (N,)."""
        return self.value_and_grad(theta)[1]

    # -- curvature products ----------------------------------------------------------

    def hvp(self, theta, v, method=curvature.DEFAULT_HVP_METHOD):
        """Hessian of L at theta times v, shape (N,) (Pearlmutter's product)."""
        theta, v = self._check_vector("theta", theta), self._check_vector("v", v)
        self.counts["hvp"] += 1
        return curvature.hessian_vector_product(self.objective, theta, v, method)

    def ggn_vp(self, theta, v):
        """Gauss-Newton matrix of L at theta times v, ``J^T H_L J v + l2 v``, shape (N,)."""
        theta, v = self._check_vector("theta", theta), self._check_vector("v", v)
        self.counts["ggn_vp"] += 1
        product = curvature.gauss_newton_vector_product(
            self.outputs, self._output_hessian_vp, theta, v)
        return product + self.l2 * v

    def hvp_operator(self, theta):
        """A counted function v -> H v at theta that reuses one linearisation (for CG)."""
        theta = self._check_vector("theta", theta)
        product = curvature.hessian_vector_operator(self.objective, theta)
        return self._counted("hvp", product)

    def ggn_operator(self, theta):
        """A counted function v -> G v at theta that reuses one linearisation (for CG)."""
        theta = self._check_vector("theta", theta)
        product = curvature.gauss_newton_operator(self.outputs, self._output_hessian_vp, theta)
        return self._counted("ggn_vp", lambda v: product(v) + self.l2 * v)

    def hessian(self, theta):
        """Dense Hessian of L at theta, shape (N, N); refused above ``dense_limit``."""
        theta = self._check_vector("theta", theta)
        self._check_dense("hessian")
        self.counts["hvp"] += self.num_params
        return curvature.hessian(self.objective, theta)

    def ggn(self, theta):
        """Dense Gauss-Newton matrix of L at theta, shape (N, N); refused above ``dense_limit``."""
        theta = self._check_vector("theta", theta)
        self._check_dense("ggn")
        product = self.ggn_operator(theta)
        return curvature.dense_from_operator(product, self.num_params)

    # -- data ----------------------------------------------------------------------------

    def subset(self, indices):
        """The same problem on the examples ``indices``; evaluations count in the same counter."""
        indices = np.asarray(indices)
        if indices.ndim != 1 or len(indices) == 0:
            raise ShapeError("indices must be a non-empty 1-D array of example indices")
        return Problem(self.model, self.loss, self.X[indices], self.Y[indices],
                       self.l2, self.dense_limit, counts=self.counts)

    def minibatch(self, size, seed=0):
        """The problem on ``size`` examples drawn without replacement with ``default_rng(seed)``."""
        if not 1 <= size <= self.num_examples:
            raise ValueError(f"minibatch size must be between 1 and {self.num_examples}, got {size}")
        rng = np.random.default_rng(seed)
        return self.subset(np.sort(rng.choice(self.num_examples, size=size, replace=False)))

    # -- helpers ------------------------------------------------------------------------

    def _output_hessian_vp(self, outputs, U):
        return self.loss.output_hessian_vp(outputs, self.Y, U)

    def _counted(self, key, product):
        def counted(v):
            self.counts[key] += 1
            return product(self._check_vector("v", v))
        return counted

    def _check_vector(self, name, vector):
        vector = np.asarray(vector, dtype=float)
        if vector.shape != (self.num_params,):
            raise ShapeError(
                f"{name} has shape {vector.shape}, but the model has {self.num_params} "
                f"parameters: pass a vector of shape ({self.num_params},)"
            )
        if not np.all(np.isfinite(vector)):
            raise NonFiniteError(f"{name} contains NaN or infinity; restart from the last finite parameters")
        return vector

    def _check_dense(self, what):
        if self.num_params > self.dense_limit:
            gib = self.num_params**2 * 8 / 2**30
            raise TooLargeError(
                f"a dense {what} of this problem has {self.num_params}^2 entries ({gib:.2f} GiB); "
                f"the limit is N = {self.dense_limit}. Use the matrix-free products "
                "(hvp, ggn_vp, hvp_operator, ggn_operator) or raise dense_limit knowingly"
            )
