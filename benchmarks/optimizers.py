"""Optimizers compared at equal wall time on two ReLU problems.

Problems:

- ``mnist1d``: a ReLU MLP 40-100-100-10 (He init, softmax cross-entropy plus an L2
  penalty 1e-3/2 |theta|^2, the same objective for every method) on the standard
  MNIST-1D split (4000 training, 1000 test examples; Greydanus 2020, whose MLP reaches
  68% test accuracy and logistic regression 32%);
- ``curves``: the deep autoencoder 784-400-200-100-50-25-6-25-50-100-200-400-784
  (ReLU hidden layers, sigmoid cross-entropy on logits, He init) on a subset of
  mininn's CURVES-like images (2000 training, 500 test: the full 20,000 is too slow
  for the budget on 2 cores).

Methods: SGD with momentum and Adam (learning rates tuned on a small grid, seed 0,
a quarter of the budget), L-BFGS (full batch), Hessian-free (full-batch gradient,
Gauss-Newton products on a curvature minibatch), K-FAC (minibatches), and scipy's
``minimize(method="trust-ncg")`` and ``"Newton-CG"`` driven by mininn's full-batch
value and gradient and its Gauss-Newton products (on the same curvature minibatch as
Hessian-free, a fixed one per run; one linearisation per point, reused by every
product at that point).

Every run gets the same wall-time budget, enforced the same way for every method: the
first evaluation (value, gradient, curvature product, ...) started past the budget
raises inside the optimizer, and the run keeps the parameters of its last completed
step (``fit``'s callback) or last accepted iterate (scipy's callback). So ``wall_s`` is
the budget plus at most one evaluation, and the unfinished step is lost. Time spent on
the full-training-set losses of the traces is excluded from the clock. The command line
runs this benchmark with one BLAS thread unless ``--threads`` says otherwise.

Evaluation counts are in full-training-set units: an evaluation on a batch of b of the
n training examples counts b/n. ``grad_evals`` counts gradients, ``curv_products``
Gauss-Newton-vector products, ``value_evals`` loss-only evaluations, ``kfac_factors``
and ``fisher_diagonals`` K-FAC's factors and Hessian-free's preconditioner; the traces' x axis
"gradient equivalents" weighs them by ``WORK_WEIGHTS`` (a product and the per-step
K-FAC factors or Fisher diagonal as one gradient, a loss value as half of one).
"""

import os
import time
from collections import Counter

import numpy as np
import scipy.optimize
from tqdm.auto import tqdm

from mininn import MLP, Problem, data, fit
from mininn.activations import sigmoid
from mininn.errors import DivergenceError
from mininn.optim import KFAC, LBFGS, Adam, HessianFree, Momentum

from .common import RESULTS, Clock, median_seconds, print_table, write_results
from .curvature import AUTOENCODER_SIZES

#: Test accuracies of the MNIST-1D paper's table (Greydanus 2020).
PAPER_TEST_ACCURACY = {"logistic_regression": 0.32, "mlp": 0.68}

#: Cost of one evaluation of each counted kind, in gradients (for the traces' x axis).
WORK_WEIGHTS = {"grad": 1.0, "value": 0.5, "ggn_vp": 1.0, "hvp": 1.0,
                "fisher_diagonal": 1.0, "kfac_factors": 1.0}

METHODS = ("SGD-momentum", "Adam", "L-BFGS", "Hessian-free", "K-FAC", "trust-ncg", "Newton-CG")

#: Learning-rate grids of the tuned first-order methods, per problem.
LEARNING_RATES = {
    "mnist1d": {"SGD-momentum": [0.01, 0.03, 0.1, 0.3], "Adam": [1e-3, 3e-3, 1e-2, 3e-2]},
    "curves": {"SGD-momentum": [1e-4, 3e-4, 1e-3, 3e-3], "Adam": [3e-4, 1e-3, 3e-3, 1e-2]},
}

#: Per problem: default budget (s), training/test sizes, L2 weight, minibatch sizes, the
#: curvature batch of Hessian-free and scipy's methods (1/8 of the training set) and the
#: initial Hessian-free damping (larger for the autoencoder, whose loss sums 784 outputs).
PROBLEMS = {
    "mnist1d": {"budget_s": 20.0, "n_train": 4000, "n_test": 1000, "l2": 1e-3, "batch_size": 128,
                "kfac_batch_size": 256, "curvature_batch_size": 500, "hf_damping": 1.0},
    "curves": {"budget_s": 30.0, "n_train": 2000, "n_test": 500, "l2": 0.0, "batch_size": 128,
               "kfac_batch_size": 256, "curvature_batch_size": 250, "hf_damping": 10.0},
}

#: The smoke run (--quick): small subsets, small nets, a tiny budget.
QUICK = {
    "mnist1d": {"budget_s": 0.3, "n_train": 400, "n_test": 200, "l2": 1e-3, "batch_size": 50,
                "kfac_batch_size": 50, "curvature_batch_size": 100, "hf_damping": 1.0,
                "sizes": [40, 16, 10]},
    "curves": {"budget_s": 0.3, "n_train": 100, "n_test": 50, "l2": 0.0, "batch_size": 50,
               "kfac_batch_size": 50, "curvature_batch_size": 50, "hf_damping": 10.0, "side": 8,
               "sizes": [64, 16, 4, 16, 64]},
}

#: Number of points of each run's trace (besides the start), spread evenly over the budget.
TRACE_POINTS = 30


class _OutOfTime(Exception):
    """Raised by the first evaluation of a run started past its budget (see BudgetCounts)."""


# -- problems ---------------------------------------------------------------------------


class Setup:
    """A benchmark problem: model, data, sizes, and fresh training problems on demand."""

    def __init__(self, name, model, loss, X_train, Y_train, X_test, Y_test, config, labels=None):
        self.name, self.model, self.loss, self.config = name, model, loss, config
        self.X_train, self.Y_train, self.X_test, self.Y_test = X_train, Y_train, X_test, Y_test
        self.labels = labels  # test labels (classification only)
        self.l2 = config.get("l2", 0.0)
        # The objective on the training set (with the L2 term) and the data loss on the test
        # set (without it); their own counts, so these evaluations are not charged to runs.
        self.train_eval = Problem(model, loss, X_train, Y_train, l2=self.l2)
        self.test_eval = Problem(model, loss, X_test, Y_test)

    @property
    def classification(self):
        return self.labels is not None

    @property
    def n_train(self):
        return len(self.X_train)

    def train_problem(self, counts=None):
        """A fresh training problem whose counts start at zero."""
        return Problem(self.model, self.loss, self.X_train, self.Y_train, l2=self.l2, counts=counts)

    def metrics(self, theta):
        """Final train/test losses (and test accuracy or squared reconstruction error)."""
        row = {"train_loss": self.train_eval.value(theta), "test_loss": self.test_eval.value(theta)}
        if self.classification:
            predictions = np.argmax(self.model.forward(theta, self.X_test), axis=1)
            row["test_accuracy"] = float(np.mean(predictions == self.labels))
        else:
            for split, X in (("train", self.X_train), ("test", self.X_test)):
                images = sigmoid(self.model.forward(theta, X))
                row[f"{split}_squared_error"] = float(np.mean(np.sum((images - X) ** 2, axis=1)))
        return row

    def describe(self):
        return {"sizes": list(self.model.sizes), "num_params": self.model.num_params,
                "loss": self.loss, "init": self.model.init_scheme,
                "n_train": self.n_train, "n_test": len(self.X_test),
                **{k: v for k, v in self.config.items() if k not in ("sizes", "budget_s")}}


def mnist1d_setup(config):
    dataset = data.mnist1d()
    n_train, n_test = config["n_train"], config["n_test"]
    X, y = dataset.X_train[:n_train], dataset.y_train[:n_train]
    X_test, y_test = dataset.X_test[:n_test], dataset.y_test[:n_test]
    model = MLP(config.get("sizes", [40, 100, 100, 10]), activation="relu", output="identity", init="he")
    return Setup("mnist1d", model, "softmax_cross_entropy", X, data.one_hot(y, 10),
                 X_test, data.one_hot(y_test, 10), config, labels=y_test)


def curves_setup(config):
    n_train, n_test = config["n_train"], config["n_test"]
    images = data.curves(n_train + n_test, seed=0, size=config.get("side", 28))
    model = MLP(config.get("sizes", AUTOENCODER_SIZES), activation="relu", output="identity", init="he")
    return Setup("curves", model, "sigmoid_cross_entropy", images[:n_train], images[:n_train],
                 images[n_train:], images[n_train:], config)


SETUPS = {"mnist1d": mnist1d_setup, "curves": curves_setup}


# -- one run --------------------------------------------------------------------------------


class Recorder:
    """The trace of a run: full-training-set loss against time and gradient equivalents."""

    def __init__(self, setup, clock, counts, fractions, budget):
        self.setup, self.clock, self.counts, self.fractions = setup, clock, counts, fractions
        self.interval = budget / TRACE_POINTS
        self.time, self.work, self.train_loss = [], [], []
        self.next = 0.0

    def weighted(self, kind):
        return self.counts[kind] * self.fractions.get(kind, 1.0)

    def gradient_equivalents(self):
        return sum(weight * self.weighted(kind) for kind, weight in WORK_WEIGHTS.items())

    def log(self, theta, force=False):
        elapsed = self.clock.elapsed()
        if not force and elapsed < self.next:
            return
        with self.clock.pause():
            self.time.append(elapsed)
            self.work.append(self.gradient_equivalents())
            self.train_loss.append(self.setup.train_eval.value(theta))
        while self.next <= elapsed:
            self.next += self.interval


class BudgetCounts(Counter):
    """Evaluation counts that raise ``_OutOfTime`` on the first evaluation past the budget."""

    def __init__(self, clock, budget):
        self.clock, self.budget = clock, budget
        super().__init__()

    def __setitem__(self, key, value):
        if self.clock.elapsed() >= self.budget:
            raise _OutOfTime
        super().__setitem__(key, value)


def _fit_run(setup, optimizer, theta0, seed, budget, batch_size, fractions):
    clock = Clock()
    problem = setup.train_problem(BudgetCounts(clock, budget))
    recorder = Recorder(setup, clock, problem.counts, fractions, budget)
    recorder.log(theta0, force=True)
    last = {"theta": np.array(theta0), "steps": 0}

    def callback(step, theta, info):
        last["theta"], last["steps"] = theta, step + 1
        recorder.log(theta)

    diverged = False
    try:
        fit(problem, optimizer, theta0, steps=10**9, batch_size=batch_size, seed=seed, callback=callback)
    except _OutOfTime:
        pass
    except DivergenceError:
        diverged = True
    wall = clock.elapsed()
    recorder.log(last["theta"], force=True)
    return last["theta"], last["steps"], wall, recorder, diverged


def _scipy_run(setup, method, theta0, seed, budget, curvature_batch_size, fractions):
    clock = Clock()
    problem = setup.train_problem(BudgetCounts(clock, budget))
    curvature = (problem if curvature_batch_size >= problem.num_examples
                 else problem.minibatch(curvature_batch_size, seed=seed))
    recorder = Recorder(setup, clock, problem.counts, fractions, budget)
    recorder.log(theta0, force=True)
    last = {"x": np.array(theta0), "steps": 0, "point": None, "product": None}

    def hessp(x, p):
        if last["point"] is None or not np.array_equal(last["point"], x):
            last["point"], last["product"] = np.array(x), curvature.ggn_operator(x)
        return last["product"](p)

    def callback(xk):
        last["x"], last["steps"] = np.array(xk), last["steps"] + 1
        recorder.log(xk)

    try:
        result = scipy.optimize.minimize(problem.value_and_grad, theta0, jac=True, hessp=hessp,
                                         method=method, callback=callback, options={"maxiter": 10**9})
        last["x"] = result.x  # scipy stopped on its own (converged or gave up): its last iterate
    except _OutOfTime:
        pass
    wall = clock.elapsed()
    recorder.log(last["x"], force=True)
    return last["x"], last["steps"], wall, recorder, False


def make_method(method, config, seed, learning_rate=None):
    """(runner, description) of ``method``: runner(setup, theta0, budget) -> run outputs."""
    n = config["n_train"]
    batch, kfac_batch, curv = config["batch_size"], config["kfac_batch_size"], config["curvature_batch_size"]
    every = {kind: batch / n for kind in WORK_WEIGHTS}
    if method in ("SGD-momentum", "Adam"):
        optimizer = (Momentum(learning_rate, momentum=0.9) if method == "SGD-momentum"
                     else Adam(learning_rate))
        return (lambda s, t, b: _fit_run(s, optimizer, t, seed, b, batch, every)), repr(optimizer)
    if method == "K-FAC":
        fractions = {kind: kfac_batch / n for kind in WORK_WEIGHTS}
        optimizer = KFAC(damping=1e-2, seed=seed)
        runner = lambda s, t, b: _fit_run(s, optimizer, t, seed, b, kfac_batch, fractions)  # noqa: E731
        return runner, repr(optimizer)
    if method == "L-BFGS":
        optimizer = LBFGS(history=10)
        return (lambda s, t, b: _fit_run(s, optimizer, t, seed, b, None, {})), repr(optimizer)
    fractions = {"ggn_vp": min(curv / n, 1.0)}
    if method == "Hessian-free":
        optimizer = HessianFree(damping=config["hf_damping"], curvature_batch_size=curv, seed=seed)
        return (lambda s, t, b: _fit_run(s, optimizer, t, seed, b, None, fractions)), repr(optimizer)
    if method in ("trust-ncg", "Newton-CG"):
        description = f"scipy.optimize.minimize(method={method!r}, hessp=Gauss-Newton product)"
        return (lambda s, t, b: _scipy_run(s, method, t, seed, b, curv, fractions)), description
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def run_once(setup, method, seed, budget, learning_rate=None):
    """One run: the result row and its trace."""
    runner, description = make_method(method, setup.config, seed, learning_rate)
    theta0 = setup.model.init(seed)
    theta, steps, wall, recorder, diverged = runner(setup, theta0, budget)
    row = {"method": method, "seed": seed, **setup.metrics(theta), "wall_s": wall,
           "grad_evals": recorder.weighted("grad"),
           "curv_products": recorder.weighted("ggn_vp") + recorder.weighted("hvp"),
           "value_evals": recorder.weighted("value"),
           "kfac_factors": recorder.weighted("kfac_factors"),
           "fisher_diagonals": recorder.weighted("fisher_diagonal"),
           "gradient_equivalents": recorder.gradient_equivalents(),
           "steps": steps, "diverged": diverged}
    trace = {"method": method, "seed": seed, "time": recorder.time,
             "gradient_equivalents": recorder.work, "train_loss": recorder.train_loss}
    return row, trace, description


def tune_learning_rate(setup, method, budget):
    """The grid learning rate with the lowest final training loss after ``budget`` s (seed 0)."""
    losses = []
    grid = LEARNING_RATES[setup.name][method]
    for lr in tqdm(grid, desc=f"{setup.name}: tune {method}", leave=False):
        row, _, _ = run_once(setup, method, 0, budget, learning_rate=lr)
        loss = row["train_loss"]
        losses.append(loss if np.isfinite(loss) and not row["diverged"] else float("inf"))
    best = int(np.argmin(losses))
    finite = [loss if np.isfinite(loss) else None for loss in losses]  # JSON has no inf
    return {"grid": grid, "train_loss": finite, "chosen": grid[best],
            "budget_s": budget, "seed": 0}


# -- summary and plots ------------------------------------------------------------------------


def summarise(rows, keys):
    """Median, min and max of ``keys`` over seeds, per method (in METHODS order)."""
    summary = []
    for method in METHODS:
        runs = [r for r in rows if r["method"] == method]
        if not runs:
            continue
        entry = {"method": method, "runs": len(runs)}
        for key in keys:
            values = np.array([r[key] for r in runs], dtype=float)
            entry[key] = float(np.median(values))
            entry[f"{key}_min"], entry[f"{key}_max"] = float(values.min()), float(values.max())
        summary.append(entry)
    return summary


def trace_band(traces, x_key, grid):
    """Median, min and max over runs of the training loss reached by each x in ``grid``.

    A run's loss at x is the last one logged at or before x; after its end it keeps its
    final loss (that of the parameters it returned).
    """
    curves = []
    for trace in traces:
        x, y = np.asarray(trace[x_key]), np.asarray(trace["train_loss"])
        curves.append(y[np.clip(np.searchsorted(x, grid, side="right") - 1, 0, None)])
    curves = np.array(curves)
    return np.median(curves, axis=0), np.min(curves, axis=0), np.max(curves, axis=0)


def plot_traces(payload, path):
    """Training loss against wall time and against gradient equivalents (median, min-max band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, x_key, label in zip(axes, ("time", "gradient_equivalents"),
                                ("wall time (s)", "gradient equivalents (full training set)")):
        for color, method in zip(plt.cm.tab10.colors, METHODS):
            traces = [t for t in payload["traces"] if t["method"] == method]
            if not traces:
                continue
            grid = np.linspace(0.0, max(t[x_key][-1] for t in traces), 300)
            median, low, high = trace_band(traces, x_key, grid)
            ax.plot(grid, median, color=color, label=method)
            ax.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
        ax.set_xlabel(label)
        ax.set_yscale("log")
        ax.set_ylabel("training loss")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{payload['problem']}: median over {payload['seeds']} seeds, band min-max")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- the benchmark -------------------------------------------------------------------------------


def run_problem(name, quick=False, budget=None, seeds=None, output_dir=None):
    config = dict((QUICK if quick else PROBLEMS)[name])
    budget = float(budget if budget is not None else config["budget_s"])
    seeds = int(seeds if seeds is not None else (1 if quick else 3))
    start = time.perf_counter()
    load_start = list(np.round(_load(), 2))
    setup = SETUPS[name](config)
    theta0 = setup.model.init(0)
    gradient_s = median_seconds(lambda: setup.train_eval.value_and_grad(theta0), 5)
    tuning = {method: tune_learning_rate(setup, method, budget / 4)
              for method in LEARNING_RATES[name]}
    rows, traces, settings = [], [], {}
    jobs = [(method, seed) for seed in range(seeds) for method in METHODS]
    for method, seed in tqdm(jobs, desc=f"{name}: runs of {budget:g} s"):
        lr = tuning[method]["chosen"] if method in tuning else None
        row, trace, description = run_once(setup, method, seed, budget, learning_rate=lr)
        settings.setdefault(method, description)  # seed 0's; seed arguments follow the run
        rows.append(row)
        traces.append(trace)
    keys = ["train_loss", "test_loss"] + (["test_accuracy"] if setup.classification else
                                          ["train_squared_error", "test_squared_error"])
    keys += ["wall_s", "grad_evals", "curv_products", "gradient_equivalents", "steps"]
    summary = summarise(rows, keys)
    columns = ["method", "train_loss", "train_loss_min", "train_loss_max", "test_loss"]
    columns += ["test_accuracy", "test_accuracy_min", "test_accuracy_max"] if setup.classification else [
        "test_squared_error"]
    print_table(summary, columns + ["grad_evals", "curv_products", "steps"])
    print(f"one full-batch gradient: {gradient_s * 1e3:.1f} ms")
    payload = {
        "problem": name, "budget_s": budget, "seeds": seeds, "quick": quick,
        "setup": setup.describe(),
        "gradient_s": gradient_s,
        "conventions": {
            "counts": "evaluations in full-training-set units: one on a batch of b of the n "
                      "training examples counts b/n",
            "gradient_equivalents_weights": WORK_WEIGHTS,
            "budget": "a run stops at its first evaluation started past the budget and keeps the "
                      "parameters of its last completed step (scipy: last accepted iterate); the "
                      "trace's full-training-set losses are excluded from wall_s",
            "tuning": "learning rates of SGD-momentum and Adam: the grid value with the lowest "
                      "training loss after budget/4 seconds from seed 0",
            "settings": "each method's optimizer in the run of seed 0; its seed argument is the "
                        "run's seed",
        },
        "settings": settings, "tuning": tuning,
        "results": rows, "summary": summary, "traces": traces,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "library default"),
        "load_average": {"start": load_start, "end": list(np.round(_load(), 2))},
        "total_s": time.perf_counter() - start,
    }
    if setup.classification:
        payload["paper_test_accuracy"] = PAPER_TEST_ACCURACY
    stem = f"optimizers_{name}_quick" if quick else f"optimizers_{name}"
    output_dir = RESULTS if output_dir is None else output_dir
    paths = list(write_results(stem, payload, "results", output_dir))
    plot_traces(payload, paths[0].with_suffix(".png"))
    paths.append(paths[0].with_suffix(".png"))
    for path in paths:
        print(f"wrote {path}")
    return payload


def _load():
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return (float("nan"),) * 3


def run(quick=False, output_dir=None, budget=None, seeds=None, problem="all"):
    names = list(PROBLEMS) if problem in (None, "all") else [problem]
    unknown = [name for name in names if name not in PROBLEMS]
    if unknown:
        raise ValueError(f"unknown problem {unknown[0]!r}; choose one of {list(PROBLEMS)} or 'all'")
    return {name: run_problem(name, quick, budget, seeds, output_dir) for name in names}
