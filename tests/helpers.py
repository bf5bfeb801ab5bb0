"""Shared test utilities: central finite differences and small random problems.

The finite-difference routines are written with plain numpy and know nothing of
autograd or mininn, so comparing against them checks mininn independently.
"""

import numpy as np

from mininn import MLP, Problem


def fd_grad(f, x, h=1e-6):
    """Central finite-difference gradient of a scalar function f at the vector x."""
    x = np.asarray(x, dtype=float)
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def fd_derivative(f, x, h=1e-6):
    """Elementwise central difference (f(x + h) - f(x - h)) / 2h of an elementwise function."""
    x = np.asarray(x, dtype=float)
    return (f(x + h) - f(x - h)) / (2 * h)


def fd_jacobian(f, x, h=1e-6):
    """Central finite-difference Jacobian of a vector function: shape (f(x).size, x.size)."""
    x = np.asarray(x, dtype=float)
    columns = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        columns.append((np.ravel(f(x + e)) - np.ravel(f(x - e))) / (2 * h))
    return np.stack(columns, axis=1)


def fd_hessian(grad_f, x, h=1e-5):
    """Central differences of a gradient function: a symmetrised (N, N) Hessian estimate."""
    H = fd_jacobian(grad_f, x, h)
    return (H + H.T) / 2


def relative_error(a, b):
    """max |a - b| / max(1, max |b|): a scale-aware maximum error."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def random_targets(loss, n, k, rng):
    """Targets suited to each loss: real for mse, binary for sigmoid CE, one-hot for softmax CE."""
    if loss == "mse":
        return rng.standard_normal((n, k))
    if loss == "sigmoid_cross_entropy":
        return (rng.random((n, k)) < 0.5).astype(float)
    if loss == "softmax_cross_entropy":
        return np.eye(k)[rng.integers(k, size=n)]
    raise ValueError(loss)


def random_problem(sizes=(3, 5, 4, 2), activation="relu", loss="mse", n=20, seed=0, l2=0.0,
                   output="identity", **kwargs):
    """(problem, theta): a small MLP on Gaussian inputs with random targets and a seeded theta."""
    rng = np.random.default_rng(seed)
    model = MLP(sizes, activation=activation, output=output)
    X = rng.standard_normal((n, sizes[0]))
    Y = random_targets(loss, n, sizes[-1], rng)
    problem = Problem(model, loss, X, Y, l2=l2, **kwargs)
    theta = model.init(seed) + 0.1 * rng.standard_normal(model.num_params)
    return problem, theta


def linear_regression(n=50, d=3, seed=0):
    """(problem, theta_star): MSE linear regression as an MLP([d, 1], "identity") and its optimum.

    The optimum is the least-squares solution with a bias column, in mininn's layout
    (W row-major of shape (d, 1), then b).
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = X @ rng.standard_normal((d, 1)) + 0.5 + 0.3 * rng.standard_normal((n, 1))
    problem = Problem(MLP([d, 1], activation="identity"), "mse", X, Y)
    coefficients, *_ = np.linalg.lstsq(np.hstack([X, np.ones((n, 1))]), Y[:, 0], rcond=None)
    return problem, coefficients


class LinearModel:
    """A model that is not an MLP (no layers), with what Problem asks for: X @ theta, 3 inputs."""

    num_params, output_dim = 3, 1

    def check_inputs(self, X):
        pass

    def forward(self, theta, X):
        return X @ theta[:, None]
