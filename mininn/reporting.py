"""Rounding for reported figures.

The book glues computed numbers into its prose and prints them in tables that nbval compares
with the committed outputs. Rounding them to a few significant digits keeps those outputs the
same on machines whose floating point differs in the last bits.
"""

import math
import numbers

__all__ = ["significant"]


def significant(x, digits=3):
    """``x`` rounded to ``digits`` significant digits, as a plain Python number.

    Returns an ``int`` when the rounded value is whole (``12``, not ``12.0``; ``1230`` for
    ``1234.5`` with three digits) and a ``float`` otherwise, so that glued text reads naturally.

    Raises
    ------
    ValueError
        If ``x`` is not a finite real number or ``digits`` is not a positive integer.
    """
    if isinstance(digits, bool) or not isinstance(digits, numbers.Integral) or digits < 1:
        raise ValueError(f"digits must be a positive integer, got {digits!r}")
    if not isinstance(x, numbers.Real) or not math.isfinite(x):
        raise ValueError(f"significant() needs a finite real number, got {x!r}: check the computation "
                         "that produced it")
    value = float(f"{float(x):.{int(digits)}g}")
    return int(value) if value.is_integer() else value
