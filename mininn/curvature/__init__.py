"""Curvature: every matrix and approximation mininn uses, one module each.

=====================  =================================================================
module                 what it holds
=====================  =================================================================
``hessian``            dense Hessian, Hessian-vector products (forward-over-reverse,
                       reverse-over-reverse) and a cached Hessian operator
``gauss_newton``       Jacobian products and the Gauss-Newton product ``J^T H_L J v``
``dense``              assembling a matrix from products, per-layer blocks, symmetric
                       eigendecomposition and the singularity tolerance
``mlp_passes``         the hand-written passes of an MLP: one stored forward pass, the
                       gradient, and Gauss-Newton and Hessian products by R-operator passes
                       (the fast path ``Problem`` uses for MLPs)
``mlp``                per-example reverse passes of an MLP
``diagonals``          the empirical Fisher and the Gauss-Newton diagonals of an MLP
``kfac``               the Kronecker factors of K-FAC and the blocks they approximate
=====================  =================================================================

The functions take plain callables and arrays; :class:`mininn.problem.Problem`
binds them to a model, a loss and data and counts each evaluation.
"""

from . import mlp_passes
from .dense import dense_from_operator, layer_blocks, psd_eigh, singular_tolerance, symmetric_eigh
from .diagonals import empirical_fisher_diagonal, ggn_diagonal
from .gauss_newton import (
    gauss_newton_operator,
    gauss_newton_vector_product,
    jacobian_vector_product,
    vector_jacobian_product,
)
from .hessian import (
    DEFAULT_HVP_METHOD,
    HVP_METHODS,
    hessian,
    hessian_vector_operator,
    hessian_vector_product,
)
from .kfac import FISHER_KINDS, kfac_block, kfac_factors, kfac_relative_errors
from .mlp import MLPBackprop, backprop, output_hessian_roots

__all__ = [
    "HVP_METHODS", "DEFAULT_HVP_METHOD", "hessian", "hessian_vector_product", "hessian_vector_operator",
    "jacobian_vector_product", "vector_jacobian_product", "gauss_newton_vector_product",
    "gauss_newton_operator",
    "dense_from_operator", "layer_blocks", "psd_eigh", "symmetric_eigh", "singular_tolerance",
    "MLPBackprop", "backprop", "mlp_passes", "output_hessian_roots",
    "empirical_fisher_diagonal", "ggn_diagonal",
    "FISHER_KINDS", "kfac_factors", "kfac_block", "kfac_relative_errors",
]
