"""The generalised Gauss-Newton matrix ``G = J^T H_L J`` as products (Schraudolph 2002).

``forward`` maps parameters x of shape (N,) to outputs F of shape (n, k);
``output_hessian_vp`` maps U of shape (n, k) to ``H_L U``, the Hessian of the loss
with respect to F applied to U (block diagonal over examples).
"""

import numpy as np
from autograd import make_jvp, make_vjp


def jacobian_vector_product(forward, x, v):
    """J v with J the Jacobian of forward at x: outputs' shape, by forward mode."""
    return make_jvp(forward)(x)(v)[1]


def vector_jacobian_product(forward, x, U):
    """J^T U with J the Jacobian of forward at x: shape (N,), by reverse mode."""
    vjp, _ = make_vjp(forward)(x)
    return vjp(U)


def gauss_newton_vector_product(forward, output_hessian_vp, x, v):
    """Generalised Gauss-Newton matrix times v, ``J^T H_L J v``, shape (N,).

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
