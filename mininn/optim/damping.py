"""One rule for trust in a quadratic model: reduction ratio, acceptance, Levenberg-Marquardt damping.

Every damped method (Levenberg-Marquardt and its Newton variants, Hessian-free,
K-FAC) measures how well its quadratic model predicted a trial step with
:func:`reduction_ratio`, accepts the step with :func:`decreases`, and adapts its
damping lambda with :func:`levenberg_marquardt` (Martens 2010).
"""

import numpy as np

#: The Levenberg-Marquardt constants (Martens 2010). The damping grows by DAMPING_INCREASE
#: when rho < RHO_LOW (or the step was rejected) and shrinks by DAMPING_DECREASE when rho > RHO_HIGH.
RHO_LOW, RHO_HIGH, DAMPING_INCREASE, DAMPING_DECREASE = 0.25, 0.75, 1.5, 2.0 / 3.0

#: Default bounds of an adapted damping lambda.
DAMPING_RANGE = (1e-8, 1e8)


def trial_loss(value, trial):
    """``value(trial)``, or infinity where trial or the loss is not finite (a step to reject)."""
    if not np.all(np.isfinite(trial)):
        return np.inf
    with np.errstate(over="ignore", invalid="ignore"):
        loss = value(trial)
    return loss if np.isfinite(loss) else np.inf


def reduction_ratio(loss, loss_after, predicted_change):
    """rho = (loss_after - loss) / predicted_change.

    ``predicted_change`` is the change of the method's quadratic model, ``m(d) - m(0)``.
    NaN when the model predicts no decrease or the trial loss is not finite.
    """
    if not (predicted_change < 0 and np.isfinite(loss_after)):
        return np.nan
    return float((loss_after - loss) / predicted_change)


def decreases(loss, loss_after, required_change=0.0):
    """The acceptance rule: ``loss_after < loss + required_change`` (a strict decrease).

    ``required_change`` <= 0 asks for a sufficient decrease, e.g. Armijo's
    ``c * alpha * g.d``; an infinite or NaN ``loss_after`` is never accepted.
    """
    return bool(loss_after < loss + required_change)


def levenberg_marquardt(damping, rho, bounds=DAMPING_RANGE):
    """The next damping after a step whose reduction ratio is rho.

    The damping is multiplied by 3/2 when rho < 1/4 or rho is NaN (pass NaN for a
    rejected step), by 2/3 when rho > 3/4, and clipped to ``bounds``.
    """
    if not rho >= RHO_LOW:
        damping *= DAMPING_INCREASE
    elif rho > RHO_HIGH:
        damping *= DAMPING_DECREASE
    return float(min(max(damping, bounds[0]), bounds[1]))
