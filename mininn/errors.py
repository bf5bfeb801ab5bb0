"""The exceptions mininn raises. Each message names the problem and the fix."""


class MininnError(Exception):
    """Base class of every error mininn raises on purpose.

    Attributes
    ----------
    history : mininn.train.History or None
        Set by :func:`~mininn.train.fit` when the error interrupted training: the record of
        the steps completed before it. None otherwise.
    """

    history = None


class ArgumentError(MininnError, ValueError):
    """An argument outside its valid range: a hyperparameter, a size, a count or a seed."""


class UnsupportedModelError(MininnError, TypeError):
    """A method that needs a :class:`~mininn.nn.MLP` was given another model."""


class ShapeError(MininnError, ValueError):
    """Arrays whose shapes do not fit together (model, data, parameter vector)."""


class NonFiniteError(MininnError, ValueError):
    """Data, parameters or a computed quantity contain NaN or infinity."""


class TargetError(MininnError, ValueError):
    """Targets outside the domain of the loss (see ``Loss.check_targets``).

    Sigmoid cross-entropy needs targets in [0, 1] and softmax cross-entropy rows that
    are probability distributions; otherwise the loss is unbounded below.
    """


class UnknownNameError(MininnError, ValueError):
    """An activation, loss, initialisation or method name that does not exist."""


class TooLargeError(MininnError, MemoryError):
    """A dense matrix was requested for a problem too large to form it."""


class CurvatureError(MininnError, ArithmeticError):
    """A curvature matrix that cannot be used as it is (singular, indefinite or not factorisable).

    The message says which fix applies: damping (DampedNewton), the absolute
    eigenvalues (SaddleFreeNewton) or the Gauss-Newton matrix (GaussNewton).
    :func:`~mininn.train.fit` also raises it for a ``numpy.linalg.LinAlgError`` inside a step.
    """


class DivergenceError(NonFiniteError):
    """Training produced non-finite values; ``history`` keeps everything up to the last good step.

    Attributes
    ----------
    history : mininn.train.History or None
        The record of the steps before the failing one (all with finite losses), with
        ``history.theta`` the last parameters whose loss was finite.
    """

    def __init__(self, message, history=None):
        super().__init__(message)
        self.history = history
