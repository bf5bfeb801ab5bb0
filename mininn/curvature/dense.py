"""Dense curvature matrices, for teaching and for small N: assembly, layer blocks, eigenvalues."""

import numpy as np

from ..errors import NonFiniteError


def dense_from_operator(matvec, dim):
    """The matrix of a linear operator, column by column: shape (dim, dim)."""
    identity = np.eye(dim)
    return np.stack([matvec(identity[:, j]) for j in range(dim)], axis=1)


def layer_blocks(matrix, layout):
    """Split an (N, N) matrix over parameters into per-layer blocks.

    Returns a nested list ``blocks[i][j]``: the rows of layer i's parameters and
    the columns of layer j's (each layer's W then b, as in the layout).
    """
    slices = [layer.params for layer in layout]
    return [[matrix[row, col] for col in slices] for row in slices]


def symmetric_eigh(matrix, name):
    """Eigenvalues (ascending) and eigenvectors of the symmetric part of a finite matrix."""
    if not np.all(np.isfinite(matrix)):
        raise NonFiniteError(f"the {name} contains NaN or infinity; restart from finite parameters")
    return np.linalg.eigh(0.5 * (matrix + matrix.T))


def psd_eigh(matrix):
    """Eigenvalues (ascending) and eigenvectors of a symmetric positive semidefinite matrix.

    Negative eigenvalues, which only rounding produces for such a matrix, are clipped to 0.
    """
    eigenvalues, vectors = np.linalg.eigh(matrix)
    return np.clip(eigenvalues, 0.0, None), vectors


def singular_tolerance(eigenvalues):
    """Eigenvalues of absolute value at most this count as zero: ``N * eps * max |eigenvalue|``.

    This is the default tolerance of ``numpy.linalg.matrix_rank``.
    """
    return len(eigenvalues) * np.finfo(float).eps * np.max(np.abs(eigenvalues))
