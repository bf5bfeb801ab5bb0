"""The Hessian of a scalar function of a flat vector: dense, and as products (Pearlmutter 1994).

``f`` maps a vector x of shape (N,) to a scalar and is written with autograd's numpy.
"""

import autograd.numpy as anp
import numpy as np
from autograd import grad, make_jvp, make_vjp
from autograd import hessian as autograd_hessian

from ..validation import one_of

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
    one_of("Hessian-vector product method", method, HVP_METHODS)
    if method == "fwd_rev":
        return make_jvp(grad(f))(x)(v)[1]
    return grad(lambda y: anp.dot(grad(f)(y), v))(x)


def hessian_vector_operator(f, x):
    """A function v -> H v at the fixed point x that reuses one linearisation of grad f.

    The gradient's computation graph is traced once; each call is then one reverse
    pass through it, which amortises the forward work over the many products of a
    conjugate-gradient solve. (H is symmetric, so the vector-Jacobian product of
    grad f is H v.)
    """
    vjp, _ = make_vjp(grad(f))(x)
    return vjp
