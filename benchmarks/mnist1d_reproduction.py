"""The MNIST-1D paper's MLP baseline reproduced with mininn: the anchor of the time-to-target benchmark.

The paper (Greydanus 2020, "Scaling down deep learning"; repository greydanus/mnist1d) reports
68% test accuracy for its MLP. Its notebooks train that MLP with ``notebooks/train.py`` and
``notebooks/models.py``; ``PAPER_SETUP`` records what they run, read from the code:

- data: ``make_dataset`` with the package's default arguments (seed 42, 5000 examples, the
  first 4000 for training and the last 1000 for testing); the repository's pickle
  ``mnist1d_data.pkl`` holds the same arrays as ``mininn.data.mnist1d()`` (same labels, inputs
  within 9e-16, compared when this module was written);
- model: ``MLPBase``, which is *not* a plain MLP: ``h1 = relu(x W1 + b1)``,
  ``h = h1 + relu(h1 W2 + b2)`` (a skip connection around the second layer), logits
  ``h W3 + b3``. The notebooks build it as ``MLPBase(input_size, output_size)``, so with its
  default width 100 (15,210 parameters): the ``hidden_size`` 256 of ``get_model_args`` is never
  passed to it. PyTorch's default initialisation of ``nn.Linear``;
- training: mean softmax cross-entropy, ``torch.optim.Adam`` at 1e-2 (betas 0.9, 0.999,
  eps 1e-8, no weight decay), batches of 100 taken in order, ``x[(k * 100) % 4000 :][:100]`` at
  step k, with no shuffling; the loop runs steps 0, ..., total_steps (total_steps + 1 updates)
  and the notebooks set total_steps to 6000 (``get_model_args`` says 8000);
- evaluation: test accuracy after the update of every step k with k % 250 == 0; the
  notebooks print and plot the curve; the table's number is not tied to a step.

The repository's committed notebook outputs end at 64.6%, 65.1% and 64.6% test accuracy
(``PAPER_NOTEBOOK_FINAL_TEST_ACCURACY``), below the 68% of the table.

Variants run besides the paper's setup (``VARIANTS``): the reading of the issue that opened
this benchmark (width 256, 8000 steps), mininn's plain ``MLP`` without the skip connection
(with PyTorch's and with He's initialisation), and the paper's model trained with ``fit``'s own
minibatches (drawn afresh each step instead of in order).

Every run goes through ``mininn.fit`` with ``mininn.optim.Adam``; the paper's batch order
is the optimizer wrapper ``SequentialBatches``. From the same initial parameters, 201 updates
of this protocol matched the paper's PyTorch loop run in float64 to 1.5e-15 in every parameter
(compared when this module was written; PyTorch is not a dependency of this project).
Test accuracy is reported both at the end ("final", the headline number) and as the best
evaluation of the run. The command line runs this benchmark with one BLAS thread unless
``--threads`` says otherwise.
"""

import os
import time

import autograd.numpy as anp
import numpy as np
from tqdm.auto import tqdm

from mininn import MLP, Problem, data, fit
from mininn.activations import relu
from mininn.optim import Adam

from .common import print_table, write_results

#: Test accuracy of the MLP in the paper's table.
PAPER_TEST_ACCURACY = 0.68

#: Last test accuracy printed by the repository's committed notebooks for this setup (2020
#: quickstart.ipynb; notebooks/quickstart.ipynb and notebooks/mnist1d-classification.ipynb).
PAPER_NOTEBOOK_FINAL_TEST_ACCURACY = [0.646, 0.646, 0.651]

#: The setup of the paper's MLP runs, as its repository's code runs it (see the module docstring).
PAPER_SETUP = {
    "source": "greydanus/mnist1d: mnist1d/data.py get_dataset_args, notebooks/models.py MLPBase, "
              "notebooks/train.py get_model_args and train_model, notebooks/mnist1d-classification.ipynb",
    "data": {"num_samples": 5000, "train_split": 0.8, "n_train": 4000, "n_test": 1000, "seed": 42,
             "template_len": 12, "padding": [36, 60], "scale_coeff": 0.4, "max_translation": 48,
             "corr_noise_scale": 0.25, "iid_noise_scale": 0.02, "shear_scale": 0.75,
             "shuffle_seq": False, "final_seq_length": 40,
             "standardisation": "whole data set to mean 0 and standard deviation 1 before the split"},
    "model": {"layers": [40, 100, 100, 10], "activation": "relu", "skip_connection":
              "h = h1 + relu(h1 W2 + b2) around the second layer", "num_params": 15210},
    "init": "PyTorch nn.Linear default: W and b uniform on [-1/sqrt(fan_in), 1/sqrt(fan_in)]",
    "loss": "softmax cross-entropy, mean over the batch",
    "optimizer": {"name": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                  "weight_decay": 0.0},
    "batch_size": 100,
    "sampling": "in order without shuffling: step k uses examples (100 k) mod 4000 to that + 99",
    "total_steps": 6000,
    "updates": 6001,
    "eval_every": 250,
    "evaluation": "test accuracy after the update of each step k with k % 250 == 0",
    "precision": "float32 (PyTorch); here float64",
    "init_seed": "torch.manual_seed(42); here numpy default_rng(seed) for seeds 0..K-1",
    "get_model_args_defaults_not_used_by_the_notebooks": {"hidden_size": 256, "total_steps": 8000},
}

#: What each variant changes, as keyword arguments of ``train``: model ("residual" is the
#: paper's MLPBase, "plain" mininn's MLP), width, init ("torch" or "he"), total steps, and
#: sampling ("sequential" as the paper, "random" for fit's fresh minibatch each step).
VARIANTS = {
    "paper": {"model": "residual", "hidden": 100, "init": "torch", "total_steps": 6000,
              "sampling": "sequential"},
    "width256_8000steps": {"model": "residual", "hidden": 256, "init": "torch", "total_steps": 8000,
                           "sampling": "sequential"},
    "plain_mlp_torch_init": {"model": "plain", "hidden": 100, "init": "torch", "total_steps": 6000,
                             "sampling": "sequential"},
    "plain_mlp_he": {"model": "plain", "hidden": 100, "init": "he", "total_steps": 6000,
                     "sampling": "sequential"},
    "random_minibatches": {"model": "residual", "hidden": 100, "init": "torch", "total_steps": 6000,
                           "sampling": "random"},
}

VARIANT_DESCRIPTIONS = {
    "paper": "the paper's notebooks: MLPBase width 100 with its skip connection, PyTorch init, "
             "batches in order, 6000 steps",
    "width256_8000steps": "the issue's reading: get_model_args' hidden_size 256 and total_steps 8000",
    "plain_mlp_torch_init": "mininn's MLP 40-100-100-10 without the skip connection, PyTorch init",
    "plain_mlp_he": "mininn's MLP 40-100-100-10 without the skip connection, He init (mininn's default)",
    "random_minibatches": "the paper's model with fit's minibatches: each step draws 100 distinct "
                          "examples, independently of the other steps (no epochs)",
}

#: The smoke run (--quick): every variant, a few steps.
QUICK = {"total_steps": 40, "eval_every": 10}


class ResidualMLP:
    """The paper's ``MLPBase``: ``relu(x W1 + b1) = h1``, ``h1 + relu(h1 W2 + b2) = h``, logits ``h W3 + b3``.

    Parameters are laid out as in ``MLP([d_in, hidden, hidden, d_out])`` (``W1, b1, W2, b2, W3,
    b3``, each W of shape (fan_in, fan_out) row-major), which also checks the inputs. Only
    ``forward`` differs from that MLP, so methods that need ``forward_trace`` (K-FAC) do not
    apply to this model.

    Parameters
    ----------
    input_dim, hidden, output_dim : int
        Input width d_in, width of both hidden layers, number of outputs d_out.
    """

    def __init__(self, input_dim, hidden, output_dim):
        self.plain = MLP([input_dim, hidden, hidden, output_dim])
        self.layout = self.plain.layout
        self.sizes = self.plain.sizes

    def __repr__(self):
        return f"ResidualMLP({list(self.sizes)}, num_params={self.num_params})"

    @property
    def num_params(self):
        return self.plain.num_params

    @property
    def output_dim(self):
        return self.plain.output_dim

    def check_inputs(self, X):
        self.plain.check_inputs(X)

    def forward(self, theta, X):
        """Logits of shape (n, d_out) for inputs X of shape (n, d_in)."""
        self.check_inputs(X)
        (W1, b1), (W2, b2), (W3, b3) = self.layout.unflatten(theta)
        h = relu(anp.dot(X, W1) + b1)
        h = h + relu(anp.dot(h, W2) + b2)
        return anp.dot(h, W3) + b3


def torch_default_init(layout, seed):
    """Parameters drawn like PyTorch's default ``nn.Linear`` initialisation, shape (N,).

    ``kaiming_uniform_(a=sqrt(5))`` for W and the bias rule of ``nn.Linear`` both give
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, a weight variance of 1/(3 fan_in): a sixth of He's
    2/fan_in. (mininn's ``MLP.init`` offers He, Glorot and sparse only.)

    Parameters
    ----------
    layout : ParameterLayout
        The model's layout (``model.layout``).
    seed : int
        Seed of ``np.random.default_rng``.
    """
    rng = np.random.default_rng(seed)
    params = []
    for layer in layout:
        bound = 1.0 / np.sqrt(layer.fan_in)
        params.append((rng.uniform(-bound, bound, size=layer.weight_shape),
                       rng.uniform(-bound, bound, size=layer.fan_out)))
    return layout.flatten(params)


class SequentialBatches:
    """Wraps an optimizer so that step k sees the paper's batch: examples from ``(k b) mod n``, in order.

    The batch is cut at the end of the data, as a slice would be (with n = 4000 and b = 100
    every batch is full). Give ``fit`` the full training problem and ``batch_size=None``.

    Parameters
    ----------
    optimizer : Optimizer
        Any object with ``init(theta)`` and ``step(problem, theta, state)``.
    batch_size : int
        b, at least 1.
    """

    def __init__(self, optimizer, batch_size):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.optimizer, self.batch_size = optimizer, int(batch_size)

    def __repr__(self):
        return f"SequentialBatches({self.optimizer!r}, batch_size={self.batch_size})"

    def init(self, theta):
        return {"step": 0, "inner": self.optimizer.init(theta)}

    def step(self, problem, theta, state):
        start = (state["step"] * self.batch_size) % problem.num_examples
        stop = min(start + self.batch_size, problem.num_examples)
        batch = problem.subset(np.arange(start, stop))
        theta, inner, info = self.optimizer.step(batch, theta, state["inner"])
        return theta, {"step": state["step"] + 1, "inner": inner}, info


def load_data():
    """The standard MNIST-1D split: (X_train, labels, X_test, labels), 4000 and 1000 examples."""
    dataset = data.mnist1d()
    return dataset.X_train, dataset.y_train, dataset.X_test, dataset.y_test


def make_model(kind, hidden, input_dim=40, output_dim=10):
    """The paper's ``ResidualMLP`` ("residual") or mininn's plain ``MLP`` ("plain")."""
    if kind == "residual":
        return ResidualMLP(input_dim, hidden, output_dim)
    if kind == "plain":
        return MLP([input_dim, hidden, hidden, output_dim], activation="relu", output="identity")
    raise ValueError(f"unknown model {kind!r}; choose 'residual' or 'plain'")


def initial_parameters(model, init, seed):
    """theta of shape (N,): PyTorch's default ("torch") or He ("he", with mininn's plain MLP only)."""
    if init == "torch":
        return torch_default_init(model.layout, seed)
    if init == "he" and isinstance(model, MLP) and model.init_scheme == "he":
        return model.init(seed)
    raise ValueError(f"init {init!r} is not available for {model!r}; use 'torch', or 'he' with a plain MLP")


def accuracy(model, theta, X, labels):
    """Fraction of rows of X whose largest logit is at the label (ties: the first index)."""
    return float(np.mean(np.argmax(model.forward(theta, X), axis=1) == labels))


def train(arrays, seed, model="residual", hidden=100, init="torch", total_steps=6000,
          sampling="sequential", learning_rate=1e-2, batch_size=100, eval_every=250):
    """One run of the paper's protocol; returns its curve of evaluations and its wall time.

    Runs ``total_steps + 1`` Adam updates through ``fit`` (the paper's loop counts steps 0 to
    total_steps) and evaluates after the update of every step k with ``k % eval_every == 0``.

    Parameters
    ----------
    arrays : tuple
        (X_train, y_train, X_test, y_test) with integer labels.
    seed : int
        Seed of the initialisation and, with random sampling, of the minibatches.

    Returns
    -------
    curve : dict
        Lists "step", "test_accuracy", "train_accuracy", "test_loss", "train_batch_loss"
        (the loss on the batch of that step, before its update), one entry per evaluation.
    wall_s : float
        Seconds of the run, evaluations included.
    """
    X_train, y_train, X_test, y_test = arrays
    network = make_model(model, hidden, X_train.shape[1], 10)
    problem = Problem(network, "softmax_cross_entropy", X_train, data.one_hot(y_train, 10))
    test = Problem(network, "softmax_cross_entropy", X_test, data.one_hot(y_test, 10))
    theta0 = initial_parameters(network, init, seed)
    if sampling == "sequential":
        optimizer, fit_batch_size = SequentialBatches(Adam(learning_rate), batch_size), None
    elif sampling == "random":
        optimizer, fit_batch_size = Adam(learning_rate), batch_size
    else:
        raise ValueError(f"unknown sampling {sampling!r}; choose 'sequential' or 'random'")
    curve = {"step": [], "test_accuracy": [], "train_accuracy": [], "test_loss": [], "train_batch_loss": []}

    def evaluate(step, theta, info):
        if step % eval_every == 0:
            curve["step"].append(step)
            curve["test_accuracy"].append(accuracy(network, theta, X_test, y_test))
            curve["train_accuracy"].append(accuracy(network, theta, X_train, y_train))
            curve["test_loss"].append(test.value(theta))
            curve["train_batch_loss"].append(float(info["loss"]))

    start = time.perf_counter()
    fit(problem, optimizer, theta0, total_steps + 1, batch_size=fit_batch_size, seed=seed, callback=evaluate)
    return curve, time.perf_counter() - start


def summarise(runs):
    """Per-seed final and best test accuracies of one variant's runs, with their medians."""
    final = [run["curve"]["test_accuracy"][-1] for run in runs]
    best = [max(run["curve"]["test_accuracy"]) for run in runs]
    return {"test_accuracy": final, "median": float(np.median(final)),
            "best_test_accuracy": best, "best_median": float(np.median(best))}


def plot_curves(payload, path):
    """Test accuracy against step, one line per seed, one panel per variant, with the paper's 68%."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants, paper = payload["variants"], payload["paper_test_accuracy"]
    # the axis starts near the accuracies after the first evaluation (the first, after one
    # update, is near chance and would flatten the curves)
    later = [a for v in variants.values() for run in v["curves"] for a in run["test_accuracy"][1:]]
    bottom = min([0.55, *later]) - 0.01
    fig, axes = plt.subplots(1, len(variants), figsize=(3.2 * len(variants), 3.4), sharey=True)
    for ax, (name, variant) in zip(np.atleast_1d(axes), variants.items()):
        for run in variant["curves"]:
            ax.plot(run["step"], run["test_accuracy"], lw=1, label=f"seed {run['seed']}")
        ax.axhline(paper, color="k", ls="--", lw=1, label=f"paper's table, {paper:.0%}")
        ax.set_title(f"{name}\nmedian final {variant['median']:.3f}", fontsize=9)
        ax.set_xlabel("step")
    np.atleast_1d(axes)[0].set_ylim(bottom, None)
    np.atleast_1d(axes)[0].set_ylabel(f"test accuracy (axis from {bottom:.2f})")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("MNIST-1D, the paper's MLP protocol with mininn (Adam 1e-2, batch 100)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(quick=False, output_dir=None, seeds=None):
    """Run every variant over seeds 0..K-1, write JSON, CSV and PNG, print a table; return the payload."""
    seeds = int(seeds if seeds is not None else (1 if quick else 5))
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    start = time.perf_counter()
    arrays = load_data()
    overrides = QUICK if quick else {}
    variants, rows = {}, []
    jobs = [(name, seed) for name in VARIANTS for seed in range(seeds)]
    runs = {name: [] for name in VARIANTS}
    for name, seed in tqdm(jobs, desc="mnist1d reproduction"):
        settings = {**VARIANTS[name], **overrides}
        curve, wall = train(arrays, seed, **settings)
        runs[name].append({"seed": seed, "curve": curve})
        rows.append({"variant": name, "seed": seed, "final_test_accuracy": curve["test_accuracy"][-1],
                     "best_test_accuracy": max(curve["test_accuracy"]),
                     "best_step": curve["step"][int(np.argmax(curve["test_accuracy"]))],
                     "final_train_accuracy": curve["train_accuracy"][-1],
                     "final_test_loss": curve["test_loss"][-1], "wall_s": wall})
    for name, variant_runs in runs.items():
        variants[name] = {"description": VARIANT_DESCRIPTIONS[name],
                          "settings": {**VARIANTS[name], **overrides}, **summarise(variant_runs),
                          "curves": [{"seed": r["seed"], **r["curve"]} for r in variant_runs]}
    paper = variants["paper"]
    payload = {
        "setup": PAPER_SETUP, "quick": quick, "seeds": list(range(seeds)),
        "paper_test_accuracy": PAPER_TEST_ACCURACY,
        "paper_notebook_final_test_accuracy": PAPER_NOTEBOOK_FINAL_TEST_ACCURACY,
        "test_accuracy": paper["test_accuracy"], "median": paper["median"],
        "best_test_accuracy": paper["best_test_accuracy"], "best_median": paper["best_median"],
        "reaches_paper": paper["median"] >= PAPER_TEST_ACCURACY,
        "conventions": {
            "test_accuracy": "after the last update (the paper's last evaluation, step total_steps)",
            "best_test_accuracy": "the largest test accuracy of the run's evaluations",
            "step": "the paper's loop index k: an evaluation at step k follows k + 1 updates",
            "seeds": "seed s initialises theta with numpy default_rng(s) (and draws the minibatches "
                     "of random_minibatches); the data are always the seed-42 data set",
        },
        "variants": variants, "results": rows,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "library default"),
        "total_s": time.perf_counter() - start,
    }
    table = [{"variant": name, "median": v["median"], "min": min(v["test_accuracy"]),
              "max": max(v["test_accuracy"]), "best_median": v["best_median"]}
             for name, v in variants.items()]
    print_table(table, ["variant", "median", "min", "max", "best_median"])
    print(f"paper: {PAPER_TEST_ACCURACY:.2f}; its notebooks' final accuracies: "
          f"{PAPER_NOTEBOOK_FINAL_TEST_ACCURACY}; total {payload['total_s']:.0f} s")
    write_results("mnist1d_reproduction", payload, "results", output_dir, quick, plot=plot_curves)
    return payload
