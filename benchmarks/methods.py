"""The methods of the time-to-target and scaling benchmarks: a factory and a search space each.

A :class:`Method` builds its optimizer from one hyperparameter value, the run's seed and
the workload, and says which batches it trains on: ``"minibatch"`` methods take a fresh
minibatch of the workload's (or the scaling benchmark's) batch size each step; ``"full"``
methods see the full training set every step (L-BFGS, the trust region, the dense methods;
Hessian-free takes its gradient on the full set and its curvature products on a fresh
minibatch of ``HF_CURVATURE_FRACTION`` of it, as Martens 2010 does).

Each method tunes one hyperparameter, the one the references tune (the learning rate; the
initial damping of Hessian-free and K-FAC, whose step sizes come from their quadratic
models; the trust region's initial radius), over ``TRIALS`` values per workload, the same
number for every method; L-BFGS (no hyperparameter to tune: its line search chooses the
step) runs its default only and the trust region 2 radii (it adapts the radius itself).
Other hyperparameters stay at the package's defaults except where stated in ``NOTES``.
"""

from dataclasses import dataclass

from mininn import optim

#: Tuning trials per method and workload (a method with fewer meaningful knobs uses fewer).
TRIALS = 4

#: Hessian-free's curvature minibatch, as a fraction of its (full) gradient batch.
HF_CURVATURE_FRACTION = 1 / 8

#: K-FAC's eigendecompositions every step while the largest Kronecker factor has at most
#: KFAC_EVERY_STEP_UP_TO rows (MNIST-1D, spirals: they then cost a fraction of a step, and fresh
#: inverses help at large batches), else every KFAC_INVERSE_EVERY steps (the package default; the
#: CURVES autoencoder's 785-row factors take several gradients' time to decompose).
KFAC_EVERY_STEP_UP_TO = 300
KFAC_INVERSE_EVERY = 10

NOTES = {
    "SGD-momentum": "mininn.optim.Momentum, heavy-ball momentum 0.9",
    "Adam": "mininn.optim.Adam, betas 0.9 and 0.999, eps 1e-8",
    "L-BFGS": "mininn.optim.LBFGS, history 10, strong-Wolfe line search, full batch",
    "Hessian-free": "mininn.optim.HessianFree, Gauss-Newton products on a fresh curvature minibatch of "
                    "1/8 of the gradient batch each step (gradient on the full training set; in the "
                    "scaling benchmark on the batch), Martens' CG stop, preconditioner, backtracking",
    "trust-region": "mininn.optim.TrustRegion, Gauss-Newton, Steihaug-Toint CG, full batch",
    "K-FAC": "mininn.optim.KFAC as Martens & Grosse 2015: step size and momentum from the quadratic "
             "model (momentum='quadratic'), Levenberg-Marquardt damping, sampled Fisher, EMA 0.95, factors "
             "and products on the whole batch, eigendecompositions every step (factors of at most "
             f"{KFAC_EVERY_STEP_UP_TO} rows) or every {KFAC_INVERSE_EVERY} steps",
    "K-FAC-no-momentum": "the same K-FAC with momentum 0 (alpha alone from the quadratic model): an "
                         "ablation, not in the default runs",
    "Shampoo": "mininn.optim.Shampoo, beta1 0.9, Adam grafting, statistics summed, inverse roots every "
               "10 steps",
    "Gauss-Newton": "mininn.optim.GaussNewton (dense Levenberg-Marquardt), full batch",
    "natural-gradient": "mininn.optim.NaturalGradient (dense Fisher), damping 1e-4, full batch",
}


@dataclass(frozen=True)
class Method:
    """A method: its tuned hyperparameter ``knob``, its batching and its search spaces.

    ``grids`` maps a workload name to the values of ``knob`` tried there; ``scaling_grid`` is
    the base grid of the scaling benchmark (5 log-spaced values).
    """

    name: str
    knob: str
    batching: str
    grids: dict
    scaling_grid: tuple = ()

    @property
    def available(self):
        return self.name != "Shampoo" or hasattr(optim, "Shampoo")

    def build(self, value, seed, model, n_train, batch_size=None):
        """The optimizer with ``knob = value`` for a run of ``seed`` training ``model`` on ``n_train``
        examples (``batch_size``: the gradient batch of a scaling run, None for the method's own)."""
        if self.name == "SGD-momentum":
            return optim.Momentum(value, momentum=0.9)
        if self.name == "Adam":
            return optim.Adam(value)
        if self.name == "Shampoo":
            return optim.Shampoo(value)
        if self.name == "L-BFGS":
            return optim.LBFGS(history=int(value))
        if self.name == "Hessian-free":
            gradient_batch = n_train if batch_size is None else batch_size
            curvature = max(1, round(gradient_batch * HF_CURVATURE_FRACTION))
            return optim.HessianFree(damping=value, curvature_batch_size=curvature, seed=seed)
        if self.name == "trust-region":
            return optim.TrustRegion("ggn", initial_radius=value)
        if self.name in ("K-FAC", "K-FAC-no-momentum"):
            every = 1 if max(model.sizes) + 1 <= KFAC_EVERY_STEP_UP_TO else KFAC_INVERSE_EVERY
            momentum = "quadratic" if self.name == "K-FAC" else 0.0
            return optim.KFAC(damping=value, inverse_every=every, momentum=momentum, seed=seed)
        if self.name == "Gauss-Newton":
            return optim.GaussNewton(damping=value)
        if self.name == "natural-gradient":
            return optim.NaturalGradient(learning_rate=value, damping=1e-4)
        raise ValueError(f"unknown method {self.name!r}")

    def grid(self, workload_name):
        """The values of ``knob`` tried on a workload (quick workloads use their full-size grid)."""
        return list(self.grids[workload_name])


def _log_grid(low, count, factor=10**0.5):
    return tuple(float(f"{low * factor**i:.3g}") for i in range(count))


METHODS = {method.name: method for method in (
    Method("SGD-momentum", "learning_rate", "minibatch",
           {"mnist1d": _log_grid(0.01, 4), "curves-sigmoid": _log_grid(1e-3, 4),
            "curves-relu": _log_grid(1e-4, 4), "spirals": _log_grid(0.01, 4)},
           scaling_grid=_log_grid(0.01, 5)),
    Method("Adam", "learning_rate", "minibatch",
           {"mnist1d": _log_grid(1e-3, 4), "curves-sigmoid": _log_grid(3e-4, 4),
            "curves-relu": _log_grid(3e-4, 4), "spirals": _log_grid(1e-3, 4)},
           scaling_grid=_log_grid(1e-3, 5)),
    Method("Shampoo", "learning_rate", "minibatch",
           {"mnist1d": _log_grid(1e-3, 4), "curves-sigmoid": _log_grid(3e-4, 4),
            "curves-relu": _log_grid(3e-4, 4), "spirals": _log_grid(1e-3, 4)},
           scaling_grid=_log_grid(1e-3, 5)),
    Method("K-FAC", "damping", "minibatch",
           {"mnist1d": _log_grid(1e-3, 4, 10), "curves-sigmoid": _log_grid(1e-2, 4, 10),
            "curves-relu": _log_grid(1e-2, 4, 10), "spirals": _log_grid(1e-3, 4, 10)},
           scaling_grid=_log_grid(1e-4, 5, 10)),
    Method("K-FAC-no-momentum", "damping", "minibatch",
           {"mnist1d": _log_grid(1e-3, 4, 10), "curves-sigmoid": _log_grid(1e-2, 4, 10),
            "curves-relu": _log_grid(1e-2, 4, 10), "spirals": _log_grid(1e-3, 4, 10)},
           scaling_grid=_log_grid(1e-4, 5, 10)),
    Method("Hessian-free", "damping", "full",
           {"mnist1d": _log_grid(1e-2, 4, 10), "curves-sigmoid": _log_grid(0.1, 4, 10),
            "curves-relu": _log_grid(0.1, 4, 10), "spirals": _log_grid(1e-2, 4, 10)},
           scaling_grid=_log_grid(1e-3, 5, 10)),
    Method("L-BFGS", "history", "full",
           {"mnist1d": (10,), "curves-sigmoid": (10,), "curves-relu": (10,), "spirals": (10,)}),
    Method("trust-region", "initial_radius", "full",
           {"mnist1d": (0.1, 1.0), "curves-sigmoid": (0.1, 1.0), "curves-relu": (0.1, 1.0),
            "spirals": (0.1, 1.0)}),
    Method("Gauss-Newton", "damping", "full", {"spirals": _log_grid(1e-4, 4, 10)}),
    Method("natural-gradient", "learning_rate", "full", {"spirals": _log_grid(0.03, 4)}),
)}

#: The methods of the batch-size scaling benchmark (Zhang et al. 2019's comparison plus Hessian-free);
#: ``--methods`` also accepts K-FAC-no-momentum.
SCALING_METHODS = ("SGD-momentum", "Adam", "K-FAC", "Shampoo", "Hessian-free")
