import numpy as np
import pytest

from mininn.reporting import significant


@pytest.mark.parametrize(
    "x, digits, expected",
    [
        (3.14159, 3, 3.14),
        (0.000123456, 2, 0.00012),
        (1234.5, 3, 1230),
        (-98.76, 2, -99),
        (12.0, 3, 12),
        (0.5, 1, 0.5),
        (np.float64(2.71828), 4, 2.718),
        (np.int64(7), 3, 7),
    ],
)
def test_rounds_to_significant_digits(x, digits, expected):
    value = significant(x, digits)
    assert value == expected
    assert type(value) is type(expected)


def test_whole_values_are_ints_and_print_without_decimals():
    assert str(significant(5.0004)) == "5"
    assert str(significant(5.04, 2)) == "5"
    assert str(significant(0.25, 3)) == "0.25"
    assert f"{significant(1234567, 3):,}" == "1,230,000"


@pytest.mark.parametrize("x", [np.nan, np.inf, -np.inf, "3", None, 1 + 2j])
def test_non_finite_or_non_real_input_is_refused(x):
    with pytest.raises(ValueError, match="must be a finite real number"):
        significant(x)


@pytest.mark.parametrize("digits", [0, -1, 2.5, True])
def test_bad_digits_are_refused(digits):
    with pytest.raises(ValueError, match="digits must be a positive integer"):
        significant(1.0, digits)
