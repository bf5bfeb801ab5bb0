"""Losses of network outputs, averaged over examples, with their output-space Hessians.

A loss takes outputs ``F`` and targets ``Y``, both of shape (n, k), and returns
the mean over the n examples of a per-example loss summed over the k outputs.
``loss.output_hessian_vp(F, Y, U)`` multiplies the Hessian of that mean with
respect to ``F`` (block diagonal over examples, each block k x k, and including
the 1/n) by a direction ``U`` of shape (n, k): the middle factor of the
Gauss-Newton product ``J^T H_L J v``. ``loss.sample_targets(F, rng)`` draws
targets from the model's predictive distribution whose negative log-likelihood
the loss is, for the true Fisher used by K-FAC.
"""

import autograd.numpy as np
from autograd import grad
from autograd.scipy.special import logsumexp

from .errors import NonFiniteError, ShapeError, TargetError, UnknownNameError


def _check(F, Y):
    if np.shape(F) != np.shape(Y) or len(np.shape(F)) != 2:
        raise ShapeError(
            f"outputs have shape {np.shape(F)} and targets {np.shape(Y)}: both must be (n, k) "
            "and equal (one-hot encode class labels with mininn.data.one_hot)"
        )


def _sigmoid(F):
    """1 / (1 + e^-F) to full relative precision, also at saturated F.

    With s = exp(-|F|): 1 / (1 + s) for F >= 0 and s / (1 + s) for F < 0.
    """
    s = np.exp(-np.abs(F))
    return np.where(F >= 0, 1.0, s) / (1.0 + s)


def _sigmoid_derivative(F):
    """p (1 - p) for p = sigmoid(F), as s / (1 + s)^2 with s = exp(-|F|): no cancellation in 1 - p."""
    s = np.exp(-np.abs(F))
    return s / (1.0 + s) ** 2


def _softmax(F):
    """Row-wise softmax exp(F - max F), normalised.

    Entry i carries a relative error of about |F_i - max F| ulps, what rounding the
    inputs themselves would cause: exactly 1 at the largest entry. (exp(F - logsumexp F)
    rounds logsumexp to the ulp of |F|, 1e-13 at |F| = 700, and carries that error into
    every probability.)
    """
    E = np.exp(F - np.max(F, axis=1, keepdims=True))
    return E / np.sum(E, axis=1, keepdims=True)


#: How far the row sums of softmax cross-entropy targets may be from 1.
ROW_SUM_TOLERANCE = 1e-6


class Loss:
    """A loss of outputs and targets; call it as ``loss(F, Y)`` for the scalar value."""

    name = "loss"

    def __call__(self, F, Y):
        _check(F, Y)
        return self.value(F, Y)

    def __repr__(self):
        return f"mininn.losses.{self.name}"

    def value(self, F, Y):
        """Mean over rows of the per-example loss (no shape check)."""
        raise NotImplementedError

    def output_gradient(self, F, Y):
        """Gradient of the loss with respect to F, shape (n, k) (including the 1/n).

        This default differentiates :meth:`value` with autograd.
        """
        return grad(self.value)(F, Y)

    def output_hessian_vp(self, F, Y, U):
        """Hessian of the loss with respect to F, times U; shape (n, k)."""
        return self.output_hessian_operator(F, Y)(U)

    def output_hessian_operator(self, F, Y):
        """The function U -> (Hessian of the loss with respect to F) U, at fixed F and Y.

        A loss defines this or :meth:`~mininn.losses.Loss.output_hessian_vp` (the default of each
        calls the other).
        """
        if type(self).output_hessian_vp is Loss.output_hessian_vp:
            raise NotImplementedError(f"{type(self).__name__} must define output_hessian_vp or "
                                      "output_hessian_operator")
        return lambda U: self.output_hessian_vp(F, Y, U)

    def sample_targets(self, F, rng):
        """Targets drawn from the predictive distribution at outputs F; shape (n, k)."""
        raise NotImplementedError

    def check_targets(self, Y):
        """Raise unless the targets Y, shape (n, k), lie in the loss's domain (here: finite).

        :class:`~mininn.problem.Problem` calls it on its data. A loss with a narrower
        domain, outside which it is unbounded below, raises :class:`~mininn.errors.TargetError`.
        """
        if not np.all(np.isfinite(Y)):
            raise NonFiniteError(f"{self.name} needs finite targets, but Y contains NaN or infinity: "
                                 "clean the targets")


class MeanSquaredError(Loss):
    """``mean_i sum_j (F_ij - Y_ij)^2``: the negative log-likelihood of a Gaussian with variance 1/2."""

    name = "mse"

    def value(self, F, Y):
        return np.sum((F - Y) ** 2) / np.shape(F)[0]

    def output_gradient(self, F, Y):
        return 2.0 * (F - Y) / np.shape(F)[0]

    def output_hessian_operator(self, F, Y):
        n = np.shape(F)[0]
        return lambda U: 2.0 * U / n

    def sample_targets(self, F, rng):
        return F + rng.normal(scale=np.sqrt(0.5), size=np.shape(F))


class SigmoidCrossEntropy(Loss):
    """Binary cross-entropy of logits F and targets Y in [0, 1], ``log(1 + e^F) - Y F``, overflow-free."""

    name = "sigmoid_cross_entropy"

    def value(self, F, Y):
        return np.sum(np.logaddexp(0.0, F) - Y * F) / np.shape(F)[0]

    def output_gradient(self, F, Y):
        return (_sigmoid(F) - Y) / np.shape(F)[0]

    def output_hessian_operator(self, F, Y):
        weights, n = _sigmoid_derivative(F), np.shape(F)[0]
        return lambda U: weights * U / n

    def sample_targets(self, F, rng):
        return (rng.random(np.shape(F)) < _sigmoid(F)).astype(float)

    def check_targets(self, Y):
        """Targets must lie in [0, 1] (labels 0 and 1, or probabilities)."""
        super().check_targets(Y)
        outside = (Y < 0) | (Y > 1)
        if np.any(outside):
            raise TargetError(
                f"sigmoid_cross_entropy needs targets in [0, 1] (labels 0 and 1, or probabilities), but "
                f"{int(np.sum(outside))} of the {np.size(Y)} entries of Y lie outside (min {np.min(Y):g}, "
                f"max {np.max(Y):g}), where the loss is unbounded below: map labels -1 and 1 to 0 and 1 "
                "with (Y + 1) / 2")


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of logits F (one row per example) and one-hot or probability rows Y."""

    name = "softmax_cross_entropy"

    def value(self, F, Y):
        return np.sum(logsumexp(F, axis=1) - np.sum(Y * F, axis=1)) / np.shape(F)[0]

    def output_gradient(self, F, Y):
        return (_softmax(F) - Y) / np.shape(F)[0]

    def output_hessian_operator(self, F, Y):
        """U -> (diag(p) - p p^T) U per row, divided by n, without cancellation when one p is near 1.

        The product p_i (U_i - p . U) is unchanged if a constant is subtracted from a row of
        U. Subtracting U_m, m the row's most probable class, makes D_m = 0, so p . D sums only
        the small probabilities, and entry m, -p_m (p . D), is as accurate as the others.
        (Directly, U_m - p . U would cancel to the digits of 1 - p_m.)
        """
        p, n = _softmax(F), np.shape(F)[0]
        most_probable = np.argmax(F, axis=1)
        rows = np.arange(n)

        def product(U):
            D = U - U[rows, most_probable][:, None]
            return p * (D - np.sum(p * D, axis=1, keepdims=True)) / n

        return product

    def sample_targets(self, F, rng):
        p = _softmax(F)
        cumulative = np.cumsum(p, axis=1)
        draws = rng.random((np.shape(F)[0], 1))
        classes = np.minimum(np.sum(cumulative < draws, axis=1), np.shape(F)[1] - 1)
        return np.eye(np.shape(F)[1])[classes]

    def check_targets(self, Y):
        """Each row must be a probability distribution: entries >= 0 summing to 1 (``ROW_SUM_TOLERANCE``)."""
        super().check_targets(Y)
        sums = np.sum(Y, axis=1)
        bad = np.any(Y < 0, axis=1) | (np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
        if np.any(bad):
            row = int(np.argmax(bad))
            raise TargetError(
                f"softmax_cross_entropy needs each row of Y to be a probability distribution (entries "
                f">= 0 summing to 1 within {ROW_SUM_TOLERANCE:g}), but {int(np.sum(bad))} of its {len(Y)} "
                f"rows are not (row {row}: smallest entry {np.min(Y[row]):g}, sum {sums[row]:g}), and the "
                "loss is then unbounded below: one-hot encode class labels with mininn.data.one_hot, or "
                "divide each row by its sum")


mse = MeanSquaredError()
sigmoid_cross_entropy = SigmoidCrossEntropy()
softmax_cross_entropy = SoftmaxCrossEntropy()

LOSSES = {loss.name: loss for loss in (mse, sigmoid_cross_entropy, softmax_cross_entropy)}


def get_loss(name):
    """Return the loss called ``name`` (a Loss instance is returned as is)."""
    if isinstance(name, Loss):
        return name
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
