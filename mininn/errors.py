"""The exceptions mininn raises. Each message names the problem and the fix."""


class MininnError(Exception):
    """Base class of every error mininn raises on purpose."""


class ArgumentError(MininnError, ValueError):
    """An argument outside its valid range: a hyperparameter, a size, a count or a seed."""


class UnsupportedModelError(MininnError, TypeError):
    """A method that needs a :class:`~mininn.nn.MLP` was given another model."""


class ShapeError(MininnError, ValueError):
    """Arrays whose shapes do not fit together (model, data, parameter vector)."""


class NonFiniteError(MininnError, ValueError):
    """Data, parameters or a computed quantity contain NaN or infinity."""


class UnknownNameError(MininnError, ValueError):
    """An activation, loss, initialisation or method name that does not exist."""


class TooLargeError(MininnError, MemoryError):
    """A dense matrix was requested for a problem too large to form it."""


class CurvatureError(MininnError, ArithmeticError):
    """A curvature matrix that cannot be used as it is (singular or indefinite).

    The message says which fix applies: damping (DampedNewton), the absolute
    eigenvalues (SaddleFreeNewton) or the Gauss-Newton matrix (GaussNewton).
    """


class DivergenceError(NonFiniteError):
    """Training produced non-finite values; ``history`` keeps everything up to the last good step.

    Attributes
    ----------
    history : mininn.train.History or None
        The training record up to and including the last finite step, with
        ``history.theta`` the last good parameters.
    """

    def __init__(self, message, history=None):
        super().__init__(message)
        self.history = history
