"""Checks of arguments and data, shared by every mininn module.

Each check returns the value in the type the caller needs (float, int, float64
array) or raises a :class:`~mininn.errors.MininnError` that names the argument,
the valid range and, where there is one, the fix.
"""

from numbers import Integral, Real

import numpy as np

from .errors import ArgumentError, NonFiniteError, ShapeError, UnknownNameError


def _number(name, value, allowed, description):
    """``value`` as a float if it is a finite real number for which ``allowed(value)`` holds."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ArgumentError(f"{name} must be {description}, got {value!r}")
    if not np.isfinite(value):
        raise NonFiniteError(f"{name} must be {description}, got {value!r}")
    if not allowed(value):
        raise ArgumentError(f"{name} must be {description}, got {value!r}")
    return float(value)


def real(name, value, minimum=-np.inf, strict=False):
    """A finite real number ``>= minimum`` (``> minimum`` if ``strict``), as a float."""
    if minimum == -np.inf:
        return _number(name, value, lambda x: True, "a finite real number")
    if strict:
        return _number(name, value, lambda x: x > minimum, f"finite and > {minimum:g}")
    return _number(name, value, lambda x: x >= minimum, f"finite and >= {minimum:g}")


def positive(name, value):
    """A finite real number > 0, as a float."""
    return _number(name, value, lambda x: x > 0, "positive and finite")


def non_negative(name, value):
    """A finite real number >= 0, as a float."""
    return _number(name, value, lambda x: x >= 0, "finite and >= 0")


def in_unit_interval(name, value):
    """A decay or momentum coefficient in [0, 1), as a float."""
    return _number(name, value, lambda x: 0 <= x < 1, "in [0, 1)")


def integer(name, value, minimum=0, maximum=None):
    """An integer (not a bool, not a float such as 3.0) in ``[minimum, maximum]``, as an int."""
    description = (f"an integer >= {minimum}" if maximum is None
                   else f"an integer between {minimum} and {maximum}")
    if (isinstance(value, bool) or not isinstance(value, Integral) or value < minimum
            or (maximum is not None and value > maximum)):
        raise ArgumentError(f"{name} must be {description}, got {value!r}")
    return int(value)


def positive_int(name, value):
    """An integer >= 1, as an int."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ArgumentError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def random_seed(name, value):
    """A seed for ``numpy.random.default_rng``: a non-negative integer."""
    return integer(name, value, 0)


def generator(name, value):
    """A ``numpy.random.Generator``, or one seeded with the non-negative integer ``value``."""
    if isinstance(value, np.random.Generator):
        return value
    return np.random.default_rng(random_seed(name, value))


def one_of(name, value, choices):
    """``value`` if it is in ``choices``, else an :class:`~mininn.errors.UnknownNameError` listing them."""
    if value not in choices:
        raise UnknownNameError(f"unknown {name} {value!r}: {name} must be one of {tuple(choices)}")
    return value


def real_array(name, value):
    """``value`` as a float64 array; an :class:`~mininn.errors.ArgumentError` if it is not real numbers."""
    if np.iscomplexobj(value):
        raise ArgumentError(f"{name} must hold real numbers, got complex values; take .real or np.abs")
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as error:
        raise ArgumentError(f"{name} must be an array of real numbers, but it cannot be converted "
                            f"to float: {error}") from None


def finite_array(name, value, fix):
    """``value`` as a float64 array without NaN or infinity; ``fix`` says what to do otherwise."""
    array = real_array(name, value)
    if not np.all(np.isfinite(array)):
        raise NonFiniteError(f"{name} contains NaN or infinity; {fix}")
    return array


def vector(name, value, size=None, fix="check how it was computed", shape_hint=None):
    """``value`` as a finite 1-D float64 array (of length ``size`` if given).

    ``shape_hint`` is appended to the message about a wrong shape; ``fix`` says what to
    do about NaN or infinity.
    """
    array = real_array(name, value)
    if array.ndim != 1 or (size is not None and array.size != size):
        message = (f"{name} must be a 1-D array, got shape {array.shape}; flatten it first" if size is None
                   else f"{name} must have shape ({size},), got shape {array.shape}")
        raise ShapeError(message + (f": {shape_hint}" if shape_hint else ""))
    return finite_array(name, array, fix)


def norm(x):
    """Euclidean norm of an array that does not overflow for finite entries.

    Where ``np.linalg.norm`` overflows to infinity, the norm is recomputed scaled by the
    largest absolute entry, so an error message reports the true size of finite parameters.
    """
    x = np.asarray(x, dtype=float)
    plain = float(np.linalg.norm(x))
    if np.isfinite(plain) or not np.all(np.isfinite(x)):
        return plain
    largest = np.max(np.abs(x))
    return float(largest * np.linalg.norm(x / largest))
