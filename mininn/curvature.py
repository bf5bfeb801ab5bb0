"""Curvature of scalar functions of a flat vector, built from autograd's operators.

Functions here take ``f``, a callable from a vector x of shape (N,) to a scalar,
or, for Gauss-Newton products, ``forward`` (x -> outputs F of shape (n, k)) and
``output_hessian_vp`` (U -> H_L U, both of shape (n, k)), the Hessian of the
loss with respect to F applied to U. Dense matrices are for teaching and for
small N; the products never form a matrix.
"""

import autograd.numpy as anp
import numpy as np
from autograd import grad, make_jvp, make_vjp
from autograd import hessian as autograd_hessian

from .errors import UnknownNameError

#: Hessian-vector product methods. "fwd_rev" pushes a forward-mode tangent through
#: the gradient computation; "rev_rev" differentiates v . grad f(x) in reverse mode.
HVP_METHODS = ("fwd_rev", "rev_rev")

#: The default method. Neither wins everywhere in the curvature benchmark
#: (benchmarks/results/curvature.json, 842,340-parameter ReLU autoencoder):
#: at batch 1000 forward-over-reverse costs 2.2x a gradient against 2.4x for
#: reverse-over-reverse, at batch 100 3.1x against 1.8x; on the 5,569-parameter
#: net of chapter 5 it is 2.4x against 2.6x. We keep forward-over-reverse, the
#: faster one at the large batches where curvature products are used.
DEFAULT_HVP_METHOD = "fwd_rev"


def hessian(f, x):
    """Dense Hessian of f at x, shape (N, N) (N reverse passes through the gradient)."""
    return np.asarray(autograd_hessian(f)(x))


def hessian_vector_product(f, x, v, method=DEFAULT_HVP_METHOD):
    """Hessian of f at x times v, shape (N,), without forming the Hessian (Pearlmutter 1994)."""
    if method == "fwd_rev":
        return make_jvp(grad(f))(x)(v)[1]
    if method == "rev_rev":
        return grad(lambda y: anp.dot(grad(f)(y), v))(x)
    raise UnknownNameError(f"unknown Hessian-vector product method {method!r}; choose one of {HVP_METHODS}")


def hessian_vector_operator(f, x):
    """A function v -> H v at the fixed point x that reuses one linearisation of grad f.

    The gradient's computation graph is traced once; each call is then one reverse
    pass through it, which amortises the forward work over the many products of a
    conjugate-gradient solve. (H is symmetric, so the vector-Jacobian product of
    grad f is H v.)
    """
    vjp, _ = make_vjp(grad(f))(x)
    return vjp


def jacobian_vector_product(forward, x, v):
    """J v with J the Jacobian of forward at x: outputs' shape, by forward mode."""
    return make_jvp(forward)(x)(v)[1]


def vector_jacobian_product(forward, x, U):
    """J^T U with J the Jacobian of forward at x: shape (N,), by reverse mode."""
    vjp, _ = make_vjp(forward)(x)
    return vjp(U)


def gauss_newton_vector_product(forward, output_hessian_vp, x, v):
    """Generalised Gauss-Newton matrix times v, ``J^T H_L J v`` (Schraudolph 2002), shape (N,).

    J v is pushed forward in forward mode, multiplied by the loss's output-space
    Hessian, and pulled back by one reverse pass.
    """
    vjp, outputs = make_vjp(forward)(x)
    return vjp(output_hessian_vp(outputs, jacobian_vector_product(forward, x, v)))


def gauss_newton_operator(forward, output_hessian_vp, x):
    """A function v -> G v at the fixed point x that reuses one linearisation of forward.

    The forward pass is traced once (giving U -> J^T U); J v is obtained as the
    reverse-mode derivative of that linear map, traced once as well. Each call
    then costs two reverse passes and no forward pass.
    """
    vjp, outputs = make_vjp(forward)(x)
    jvp, _ = make_vjp(vjp)(np.zeros(np.shape(outputs)))

    def product(v):
        return vjp(output_hessian_vp(outputs, jvp(v)))

    return product


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
