"""The curvature benchmark's peer: the same MLP, loss and products in JAX (jit, float64).

Optional: install with ``pip install -r benchmarks/requirements-peer.txt``. Without JAX,
:func:`load` returns None and says why. When the BLAS thread variables ask for one
thread, the process is pinned to one CPU before JAX loads: XLA's flags alone
(``--xla_cpu_multi_thread_eigen=false``) left its CPU runtime using two cores here (process
CPU time 1.9 times the wall time), which made JAX's times those of two threads against
mininn's one.
"""

import os

#: mininn activation and loss names -> their JAX definitions (filled in by load()).
_JAX = {}


def load():
    """Import JAX for float64 work; None (with the reason in ``load.reason``) if it is absent."""
    if os.environ.get("OMP_NUM_THREADS") == "1" and "jax" not in _JAX:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as error:
        load.reason = f"JAX is not installed ({error}); pip install -r benchmarks/requirements-peer.txt"
        return None
    jax.config.update("jax_enable_x64", True)
    _JAX.update(jax=jax, jnp=jnp)
    return jax


load.reason = None


def version():
    """The loaded JAX's version string, or None."""
    return _JAX["jax"].__version__ if "jax" in _JAX else None


def _activation(name):
    jnp = _JAX["jnp"]
    table = {"relu": lambda z: jnp.where(z > 0, z, 0.0), "identity": lambda z: z,
             "tanh": jnp.tanh, "sigmoid": _JAX["jax"].nn.sigmoid}
    return table[name]


def _loss(name):
    """(value of F, Y; output Hessian weights builder) for the losses the benchmark uses."""
    jax, jnp = _JAX["jax"], _JAX["jnp"]
    n = lambda F: F.shape[0]  # noqa: E731
    if name == "sigmoid_cross_entropy":
        def value(F, Y):
            return jnp.sum(jnp.logaddexp(0.0, F) - Y * F) / n(F)

        def hessian(F, Y):
            p = jax.nn.sigmoid(F)
            return lambda U: p * (1.0 - p) * U / n(F)
    elif name == "mse":
        def value(F, Y):
            return jnp.sum((F - Y) ** 2) / n(F)

        def hessian(F, Y):
            return lambda U: 2.0 * U / n(F)
    else:
        raise ValueError(f"the JAX peer has no loss {name!r}")
    return value, hessian


class JaxProducts:
    """Jitted gradient and curvature products of an MLP objective, the peer of mininn's.

    Parameters
    ----------
    problem : mininn.Problem
        Its model (an MLP with a named activation and output), loss, data and l2.
    """

    def __init__(self, problem):
        if "jax" not in _JAX:
            raise RuntimeError("JAX is not loaded: call benchmarks.jax_peer.load() first (it returns None "
                               "when JAX is not installed)")
        jax, jnp = _JAX["jax"], _JAX["jnp"]
        model = problem.model
        hidden, output = _activation(model.activation_name), _activation(model.output_name)
        loss_value, loss_hessian = _loss(problem.loss.name)
        layers = model.layout.layers
        X, Y, l2 = jnp.asarray(problem.X), jnp.asarray(problem.Y), problem.l2
        # theta is cut with split, whose transpose is a concatenation: slicing it instead makes
        # XLA pad every layer's gradient to length N and add them up (2.6x slower at batch 100)
        cuts = [end for layer in layers for end in (layer.weight.stop, layer.bias.stop)][:-1]

        def forward(theta):
            parts = jnp.split(theta, cuts)
            h = X
            for layer in layers:
                W, b = parts[2 * layer.index].reshape(layer.weight_shape), parts[2 * layer.index + 1]
                z = h @ W + b
                h = output(z) if layer.index == len(layers) - 1 else hidden(z)
            return h

        def objective(theta):
            return loss_value(forward(theta), Y) + 0.5 * l2 * theta @ theta

        gradient = jax.grad(objective)

        def gauss_newton(theta, v):
            F, Jv = jax.jvp(forward, (theta,), (v,))
            _, pullback = jax.vjp(forward, theta)
            return pullback(loss_hessian(F, Y)(Jv))[0] + l2 * v

        def gauss_newton_build(theta):
            F, push = jax.linearize(forward, theta)
            pull = jax.linear_transpose(push, theta)
            p = loss_hessian(F, Y)(jnp.ones_like(F))  # the (diagonal) output Hessian's weights
            return push, pull, p

        def gauss_newton_apply(operator, v):
            push, pull, weights = operator
            return pull(weights * push(v))[0] + l2 * v

        self.gradient = jax.jit(gradient)
        self.hvp = jax.jit(lambda theta, v: jax.jvp(gradient, (theta,), (v,))[1])
        self.hvp_build = jax.jit(lambda theta: jax.linearize(gradient, theta)[1])
        self.hvp_apply = jax.jit(lambda operator, v: operator(v))
        self.ggn = jax.jit(gauss_newton)
        self.ggn_build = jax.jit(gauss_newton_build)
        self.ggn_apply = jax.jit(gauss_newton_apply)
        self._jnp = jnp

    def timed(self, theta, v):
        """Name -> a no-argument function that runs one product to completion (as in the benchmark)."""
        jnp = self._jnp
        theta, v = jnp.asarray(theta), jnp.asarray(v)
        hvp_operator, ggn_operator = self.hvp_build(theta), self.ggn_build(theta)
        ready = _JAX["jax"].block_until_ready
        return {
            "grad": lambda: ready(self.gradient(theta)),
            "hvp": lambda: ready(self.hvp(theta, v)),
            "hvp_cached": lambda: ready(self.hvp_apply(hvp_operator, v)),
            "hvp_cached_build": lambda: ready(self.hvp_build(theta)),
            "ggn": lambda: ready(self.ggn(theta, v)),
            "ggn_cached": lambda: ready(self.ggn_apply(ggn_operator, v)),
            "ggn_cached_build": lambda: ready(self.ggn_build(theta)),
        }
