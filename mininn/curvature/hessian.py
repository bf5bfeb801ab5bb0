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

#: The default method of the generic path. For an MLP, ``Problem`` uses the hand-written
#: R-backprop of :mod:`mininn.curvature.mlp_passes` instead, faster than both autograd
#: methods at the sizes of the book and the benchmark (one thread, CPU time, in gradients
#: of the generic path): 0.99 against 1.99 (forward-over-reverse) and 2.23
#: (reverse-over-reverse) on chapter 5's 52,221-parameter autoencoder; 0.79 against 3.55
#: and 2.68 at batch 100 and 1.40 against 2.58 and 2.41 at batch 1000 on the benchmark's
#: 842,340-parameter autoencoder (benchmarks/results/curvature.json). Between the two autograd
#: methods, forward-over-reverse is the faster at the book's sizes.
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
