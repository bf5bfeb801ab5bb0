"""Rounding for reported figures.

The book glues computed numbers into its prose and prints them in tables that nbval compares
with the committed outputs. Rounding them to a few significant digits keeps those outputs the
same on machines whose floating point differs in the last bits.
"""

from .validation import positive_int, real

__all__ = ["significant"]


def significant(x, digits=3):
    """``x`` rounded to ``digits`` significant digits, as a plain Python number.

    Returns an ``int`` when the rounded value is whole (``12``, not ``12.0``; ``1230`` for
    ``1234.5`` with three digits) and a ``float`` otherwise, so that glued text reads naturally.

    Raises
    ------
    mininn.errors.ArgumentError, mininn.errors.NonFiniteError
        If ``x`` is not a finite real number or ``digits`` is not a positive integer.
    """
    digits = positive_int("digits", digits)
    x = real("significant()'s argument (check the computation that produced it)", x)
    value = float(f"{x:.{digits}g}")
    return int(value) if value.is_integer() else value
