"""The workloads of the time-to-target and batch-size-scaling benchmarks.

A workload is a model, a loss, a training and a test set, a target fixed in advance
(a metric, its value, its direction and how it was fixed), the minibatch size of the
minibatch methods, and the budgets of one run. Its methods are listed by name (see
:mod:`benchmarks.methods`).

- ``mnist1d``: the MNIST-1D data set paper's MLP setup (Greydanus 2020: hidden width 256,
  Adam at 1e-2, batch 100, 8000 steps, no weight decay) as mininn's plain MLP
  40-256-256-10 (ReLU, He init; K-FAC and Shampoo need plain MLP layers) with ``fit``'s
  random minibatches. The anchor is that setup's Adam run; the target is fixed from it
  (``MNIST1D_TARGET``).
- ``curves-sigmoid``: Martens' (2010) deep autoencoder setting,
  784-400-200-100-50-25-6-25-50-100-200-400-784 with logistic hidden units, a *linear*
  6-unit code layer (one activation per hidden layer), Martens' sparse initialisation, sigmoid
  cross-entropy on the output logits, on mininn's CURVES-like images.
- ``curves-relu``: the same sizes with ReLU hidden units (the code layer ReLU too: the
  book's ReLU version) and He initialisation.
- ``spirals``: a small deep ReLU network, 2-20-20-20-20-1 (1,341 parameters), on two
  spirals: small enough for the dense Gauss-Newton and natural-gradient methods.

Minibatch methods train on batches of 100 (MNIST-1D, as the paper), 250 (CURVES: 8 per epoch
of the default 2000 images) and 50 (spirals, 10 per epoch). Budgets per run: 200
gradient-equivalents on MNIST-1D (the anchor's 8000 steps), 60 on CURVES (2000/1000 images
by default; ``size="full"`` takes Hinton & Salakhutdinov's 20000/10000, with the same budget
in full-training-set units, ten times the work), 20000 on spirals (the dense methods count
N = 1341 products per step) with at most 40000 steps.

The CURVES targets are test reconstruction errors: the mean over test images of the
summed squared error of ``sigmoid(outputs)`` against the image. They and the spirals
target were fixed from a pilot of Adam at its best rate of the grid of
:mod:`benchmarks.methods` (seed 0, the full budget): the best value Adam's run had reached
by half of its work, rounded to two significant figures away from the better side (up for
an error, down for an accuracy; ``time_to_target.fix_target`` runs that pilot again, and
runs it by itself for a workload whose target is not recorded here).
"""

from dataclasses import dataclass, field

import numpy as np

from mininn import MLP, Problem, data
from mininn.activations import sigmoid
from mininn.curvature import mlp_passes

from .curvature import AUTOENCODER_SIZES
from .runs import Target, WorkProblem

#: The Adam anchor of the MNIST-1D workload: the data set paper's setup.
MNIST1D_ANCHOR = {"sizes": [40, 256, 256, 10], "learning_rate": 1e-2, "batch_size": 100, "steps": 8000,
                  "seeds": 5}

#: The MNIST-1D target, fixed from the anchor before any other method ran (see ``mnist1d``).
MNIST1D_TARGET = Target(
    "test_accuracy", 0.68, "max",
    "the paper's 68%: fixed before any other method ran, as the Adam anchor (the paper's setup, "
    "40-256-256-10 plain MLP) reached it by the end in at least 2 of its first 3 seeds")

#: Sizes of the default and the larger CURVES data (Hinton & Salakhutdinov's full set is 20,000
#: training and 10,000 test images).
CURVES_SIZES = {"default": (2000, 1000), "full": (20000, 10000)}


@dataclass
class Workload:
    """A model and data with a target. ``metrics`` maps names to functions ``theta -> float``."""

    name: str
    description: str
    model: MLP
    loss: str
    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    target: Target
    batch_size: int
    max_work: float
    max_steps: int
    budget_s: float
    methods: tuple
    l2: float = 0.0
    labels_test: np.ndarray | None = None
    metrics: dict = field(default_factory=dict)

    def __post_init__(self):
        self.train_eval = Problem(self.model, self.loss, self.X_train, self.Y_train, l2=self.l2)
        self.metrics = {"train_loss": self.train_loss, **self.metrics}
        if self.labels_test is not None:
            self.metrics["test_accuracy"] = self.test_accuracy
        if self.loss == "sigmoid_cross_entropy" and self.Y_test.shape == self.X_test.shape:
            self.metrics["test_reconstruction_error"] = self.test_reconstruction_error

    @property
    def n_train(self):
        return len(self.X_train)

    def problem(self):
        """A fresh training problem with its own work ledger."""
        return WorkProblem(self.model, self.loss, self.X_train, self.Y_train, l2=self.l2)

    def metric(self, theta):
        """The target's metric at theta."""
        return self.metrics[self.target.metric](theta)

    def train_loss(self, theta):
        """The training objective (L2 term included) at theta, by the fast forward pass where it applies."""
        if not mlp_passes.is_supported(self.model):
            return self.train_eval.objective(theta)
        outputs = mlp_passes.forward(self.model, theta, self.X_train).outputs
        return float(self.train_eval.loss.value(outputs, self.Y_train) + 0.5 * self.l2 * (theta @ theta))

    def test_accuracy(self, theta):
        outputs = self.model.forward(theta, self.X_test)
        predictions = (np.argmax(outputs, axis=1) if outputs.shape[1] > 1 else (outputs[:, 0] > 0))
        return float(np.mean(predictions == self.labels_test))

    def reconstruction_error(self, theta, images):
        """Mean over images of the squared error of the reconstruction (sigmoid of the output logits)."""
        return float(np.mean(np.sum((sigmoid(self.model.forward(theta, images)) - images) ** 2, axis=1)))

    def test_reconstruction_error(self, theta):
        return self.reconstruction_error(theta, self.X_test)

    def describe(self):
        hidden = self.model.layer_activation_names[:-1]
        return {"name": self.name, "description": self.description, "sizes": list(self.model.sizes),
                "activation": hidden[0] if len(set(hidden)) == 1 else "per layer",
                "hidden_activations": hidden, "init": self.model.init_scheme,
                "num_params": self.model.num_params, "loss": self.loss, "l2": self.l2,
                "n_train": self.n_train, "n_test": len(self.X_test), "batch_size": self.batch_size,
                "target": {"metric": self.target.metric, "value": self.target.value,
                           "direction": self.target.direction, "how_fixed": self.target.how_fixed},
                "max_work": self.max_work, "max_steps": self.max_steps, "budget_s": self.budget_s,
                "methods": list(self.methods)}


def mnist1d(quick=False, sizes=None):
    """The MNIST-1D workload (``sizes`` overrides the network, e.g. for the scaling benchmark)."""
    dataset = data.mnist1d()
    n_train, n_test = (400, 200) if quick else (4000, 1000)
    sizes = sizes or ([40, 16, 10] if quick else MNIST1D_ANCHOR["sizes"])
    target = Target("test_accuracy", 0.3, "max", "smoke run") if quick else MNIST1D_TARGET
    return Workload(
        "mnist1d", "MNIST-1D, the data set paper's MLP setup (plain MLP, He init, no weight decay)",
        MLP(sizes, activation="relu", init="he"), "softmax_cross_entropy",
        dataset.X_train[:n_train], data.one_hot(dataset.y_train[:n_train], 10),
        dataset.X_test[:n_test], data.one_hot(dataset.y_test[:n_test], 10),
        target=target, batch_size=50 if quick else MNIST1D_ANCHOR["batch_size"],
        # the anchor's budget: its 8000 steps of batch 100 are 200 gradient-equivalents
        max_work=20.0 if quick else 200.0, max_steps=400 if quick else 40000,
        budget_s=10.0 if quick else 3600.0,
        methods=("SGD-momentum", "Adam", "L-BFGS", "Hessian-free", "trust-region", "K-FAC", "Shampoo"),
        labels_test=dataset.y_test[:n_test])


#: CURVES targets (test reconstruction error), fixed by ``fix_target`` (see the module docstring).
CURVES_TARGETS = {
    "curves-sigmoid": Target(
        "test_reconstruction_error", 19.0, "min",
        "pilot of Adam's grid [0.0003, 0.000949, 0.003, 0.00949] on seed 0 for the whole budget: "
        "the best rate, 0.000949, had test_reconstruction_error 18.12 by half of its run (30 "
        "gradient-equivalents), rounded up to two significant figures"),
    "curves-relu": Target(
        "test_reconstruction_error", 17.0, "min",
        "pilot of Adam's grid [0.0003, 0.000949, 0.003, 0.00949] on seed 0 for the whole budget: "
        "the best rate, 0.000949, had test_reconstruction_error 16.37 by half of its run (30 "
        "gradient-equivalents), rounded up to two significant figures"),
}


def curves(kind, quick=False, size="default"):
    """``curves-sigmoid`` (Martens' setting) or ``curves-relu`` (ReLU, He init)."""
    if quick:
        n_train, n_test, side, sizes = 100, 50, 8, [64, 16, 4, 16, 64]
    else:
        (n_train, n_test), side, sizes = CURVES_SIZES[size], 28, AUTOENCODER_SIZES
    images = data.curves(n_train + n_test, seed=0, size=side)
    code = sizes.index(min(sizes)) - 1  # the code layer, among the hidden layers
    if kind == "curves-sigmoid":
        hidden = ["identity" if layer == code else "sigmoid" for layer in range(len(sizes) - 2)]
        model = MLP(sizes, activation=hidden, init="sparse")
        description = ("Martens' (2010) autoencoder: logistic hidden units, linear code layer, sparse "
                       "init, sigmoid cross-entropy")
    elif kind == "curves-relu":
        model = MLP(sizes, activation="relu", init="he")
        description = "the same autoencoder with ReLU hidden units (code layer included) and He init"
    else:
        raise ValueError(f"unknown CURVES workload {kind!r}; choose curves-sigmoid or curves-relu")
    target = Target("test_reconstruction_error", 1e9, "min", "smoke run") if quick else CURVES_TARGETS[kind]
    return Workload(
        kind, description, model, "sigmoid_cross_entropy", images[:n_train], images[:n_train],
        images[n_train:], images[n_train:], target=target, batch_size=50 if quick else 250,
        max_work=10.0 if quick else 60.0, max_steps=200 if quick else 100000,
        budget_s=10.0 if quick else 3600.0,
        methods=("SGD-momentum", "Adam", "L-BFGS", "Hessian-free", "trust-region", "K-FAC", "Shampoo"))


#: The spirals target, fixed by ``fix_target``.
SPIRALS_TARGET = Target(
    "test_accuracy", 0.99, "max",
    "pilot of Adam's grid [0.001, 0.00316, 0.01, 0.0316] on seed 0 for the whole budget (40000 steps): "
    "every rate had test accuracy 0.998 by half of its run (2000 gradient-equivalents); the best, 0.001, "
    "rounded down to two significant figures")


def spirals(quick=False):
    """Two spirals (500 training, 500 test points) and a 2-20-20-20-20-1 ReLU network."""
    n = 100 if quick else 500
    X, Y = data.two_spirals(2 * n, noise=0.05, seed=0)
    sizes = [2, 8, 8, 1] if quick else [2, 20, 20, 20, 20, 1]
    target = Target("test_accuracy", 0.6, "max", "smoke run") if quick else SPIRALS_TARGET
    return Workload(
        "spirals", "two spirals, a small deep ReLU network (the dense methods' end)",
        MLP(sizes, activation="relu", init="he"), "sigmoid_cross_entropy", X[:n], Y[:n], X[n:], Y[n:],
        target=target, batch_size=50, max_work=200.0 if quick else 20000.0,
        max_steps=400 if quick else 40000, budget_s=10.0 if quick else 3600.0,
        methods=("SGD-momentum", "Adam", "L-BFGS", "Hessian-free", "trust-region", "K-FAC", "Shampoo",
                 "Gauss-Newton", "natural-gradient"),
        labels_test=Y[n:, 0])


WORKLOADS = ("mnist1d", "curves-sigmoid", "curves-relu", "spirals")


def build(name, quick=False, size="default"):
    """The workload ``name`` (one of ``WORKLOADS``)."""
    if name == "mnist1d":
        return mnist1d(quick)
    if name in ("curves-sigmoid", "curves-relu"):
        return curves(name, quick, size)
    if name == "spirals":
        return spirals(quick)
    raise ValueError(f"unknown workload {name!r}; choose from {WORKLOADS}")
