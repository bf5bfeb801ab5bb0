"""Tests of K-FAC: the factors (mininn.curvature.kfac) against dense Gauss-Newton blocks; the optimizer."""

import warnings

import numpy as np
import pytest
from helpers import LinearModel, linear_regression, random_problem

from mininn import MLP, Problem, data
from mininn.curvature import FISHER_KINDS, kfac_block, kfac_factors, kfac_relative_errors, layer_blocks
from mininn.errors import ArgumentError, ShapeError, UnknownNameError
from mininn.optim import KFAC
from mininn.optim.kfac import GAMMA_DECAY, SmallBatchWarning, solve_quadratic_model


def run(optimizer, problem, theta, steps):
    state = optimizer.init(theta)
    infos = []
    for _ in range(steps):
        theta, state, info = optimizer.step(problem, theta, state)
        infos.append(info)
    return theta, state, infos


# -- factors and blocks ----------------------------------------------------------------


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_one_layer_linear_mse_block_is_exact(l2):
    problem, theta = random_problem(sizes=(3, 2), activation="identity", n=20, l2=l2)
    [(A, G)] = kfac_factors(problem.model, theta, problem.X, "mse", problem.Y, fisher="exact")
    [[exact]] = layer_blocks(problem.ggn(theta), problem.model.layout)
    exact = exact - l2 * np.eye(len(exact))
    np.testing.assert_allclose(kfac_block(A, G), exact, rtol=0, atol=1e-10 * np.abs(exact).max())
    np.testing.assert_allclose(G, 2 * np.eye(2), atol=1e-12)
    assert kfac_relative_errors(problem, theta, fisher="exact")[0] < 1e-10


@pytest.mark.parametrize("loss", ["mse", "sigmoid_cross_entropy", "softmax_cross_entropy"])
def test_single_example_blocks_are_exact_for_every_layer(loss):
    # With one example the mean of Kronecker products is a single Kronecker product.
    problem, theta = random_problem(sizes=(4, 6, 5, 3), loss=loss, n=1, seed=2)
    assert np.all(kfac_relative_errors(problem, theta, fisher="exact") < 1e-10)


def test_deep_relu_errors_per_layer():
    problem, theta = random_problem(sizes=(4, 8, 8, 2), n=50, seed=0)
    for fisher in ("exact", "sampled"):
        errors = kfac_relative_errors(problem, theta, fisher=fisher)
        assert errors.shape == (3,)
        assert np.all(np.isfinite(errors)) and np.all(errors < 1)
    exact = kfac_relative_errors(problem, theta, fisher="exact")
    # MSE with a linear output: D_i = I and H_i = 2 I for the last layer, so only it is exact.
    assert exact[-1] < 1e-10
    assert np.all(exact[:-1] > 1e-2)


def test_kfac_block_matches_explicit_construction_in_theta_order():
    fan_in, fan_out = 2, 3
    layer = MLP([fan_in, fan_out]).layout.layers[0]
    rng = np.random.default_rng(0)
    A, G = rng.standard_normal((fan_in + 1, fan_in + 1)), rng.standard_normal((fan_out, fan_out))
    # Position in theta of W[i, j], with i = fan_in standing for the bias b[j].
    def position(i, j):
        if i == fan_in:
            return layer.bias.start + j
        return layer.weight.start + np.ravel_multi_index((i, j), layer.weight_shape)

    explicit = np.zeros(((fan_in + 1) * fan_out,) * 2)
    for i in range(fan_in + 1):
        for j in range(fan_out):
            for k in range(fan_in + 1):
                for m in range(fan_out):
                    explicit[position(i, j), position(k, m)] = A[i, k] * G[j, m]
    np.testing.assert_array_equal(kfac_block(A, G), explicit)


@pytest.mark.parametrize("fisher", FISHER_KINDS)
def test_factors_are_symmetric_psd_with_a_homogeneous_coordinate(fisher):
    problem, theta = random_problem(sizes=(4, 8, 8, 3), loss="softmax_cross_entropy", n=30)
    factors = kfac_factors(problem.model, theta, problem.X, problem.loss, problem.Y, fisher)
    assert len(factors) == 3
    for layer, (A, G) in zip(problem.model.layout, factors):
        assert A.shape == (layer.fan_in + 1,) * 2 and G.shape == (layer.fan_out,) * 2
        assert A[-1, -1] == pytest.approx(1.0)
        for factor in (A, G):
            np.testing.assert_allclose(factor, factor.T, atol=1e-14)
            assert np.linalg.eigvalsh(factor).min() > -1e-12 * np.abs(factor).max()
        assert np.abs(G).max() > 0


def test_sampled_fisher_averages_to_the_exact_one():
    problem, theta = random_problem(sizes=(3, 6, 2), loss="softmax_cross_entropy", n=10, seed=1)
    repeats = 2000  # each example drawn `repeats` times: G averages over that many targets
    X = np.tile(problem.X, (repeats, 1))
    sampled = kfac_factors(problem.model, theta, X, problem.loss, fisher="sampled", rng=3)
    exact = kfac_factors(problem.model, theta, problem.X, problem.loss, problem.Y, "exact")
    for (A_s, G_s), (A_e, G_e) in zip(sampled, exact):
        np.testing.assert_allclose(A_s, A_e, atol=1e-12)
        assert np.linalg.norm(G_s - G_e) < 0.05 * np.linalg.norm(G_e)
    empirical = kfac_factors(problem.model, theta, problem.X, problem.loss, problem.Y, "empirical")
    assert np.linalg.norm(empirical[-1][1] - exact[-1][1]) > 0.05 * np.linalg.norm(exact[-1][1])


def test_factor_arguments_are_checked():
    problem, theta = random_problem()
    with pytest.raises(UnknownNameError, match="fisher"):
        kfac_factors(problem.model, theta, problem.X, "mse", problem.Y, fisher="true")
    for fisher in ("empirical", "exact"):
        with pytest.raises(ShapeError, match="needs targets Y"):
            kfac_factors(problem.model, theta, problem.X, "mse", fisher=fisher)


def test_non_mlp_model_is_refused_clearly():
    X = np.ones((4, 3))
    problem = Problem(LinearModel(), "mse", X, np.ones((4, 1)))
    with pytest.raises(TypeError, match="K-FAC needs a mininn.MLP, got LinearModel"):
        kfac_factors(problem.model, np.zeros(3), X, "mse")
    optimizer = KFAC()
    with pytest.raises(TypeError, match="MLP"):
        optimizer.step(problem, np.zeros(3), optimizer.init(np.zeros(3)))


# -- the optimizer ----------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    {},
    {"momentum": "quadratic"},
    {"momentum": "quadratic", "gamma": 1e-16, "gamma_every": 1},  # three γ tried, all tiny
])
def test_one_step_solves_linear_least_squares(options):
    # One layer, MSE, exact G: A ⊗ G is the Hessian, so with tiny damping the step is Newton's.
    # Factored damping adds sqrt(damping) to each factor, hence the very small damping.
    problem, solution = linear_regression()
    optimizer = KFAC(damping=1e-16, fisher="exact", adapt_damping=False, **options)
    theta, _, [info] = run(optimizer, problem, np.zeros(problem.num_params), 1)
    np.testing.assert_allclose(theta, solution, atol=1e-7)
    assert info["step_size"] == pytest.approx(1.0, abs=1e-7)
    assert info["accepted"] and info["loss_after"] < info["loss"]


@pytest.mark.parametrize("separate_gamma", [None, 0.3])
def test_step_is_the_factored_damped_kfac_direction(separate_gamma):
    # gamma=None ties the factored damping to lambda + l2; a separate gamma replaces it.
    problem, theta = random_problem(sizes=(3, 5, 2), n=25, l2=0.05)
    damping, learning_rate = 0.1, 1e-3
    optimizer = KFAC(learning_rate, damping, fisher="exact", adapt_damping=False, gamma=separate_gamma)
    new_theta, _, info = optimizer.step(problem, theta, optimizer.init(theta))
    assert info["accepted"] and info["curvature_products"] == 0  # nothing to adapt: no products
    gamma, gradient = separate_gamma or damping + problem.l2, problem.grad(theta)
    assert info["gamma"] == pytest.approx(gamma, rel=1e-15)
    factors = kfac_factors(problem.model, theta, problem.X, problem.loss, problem.Y, "exact")
    for layer, (A, G) in zip(problem.model.layout, factors):
        pi = np.sqrt(np.trace(A) / len(A) / (np.trace(G) / len(G)))
        damped = kfac_block(A + pi * np.sqrt(gamma) * np.eye(len(A)),
                            G + np.sqrt(gamma) / pi * np.eye(len(G)))
        expected = -learning_rate * np.linalg.solve(damped, gradient[layer.params])
        np.testing.assert_allclose(new_theta[layer.params] - theta[layer.params], expected,
                                   rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("options", [
    {},
    {"learning_rate": 0.1},
    {"momentum": 0.5},
    {"fisher": "exact", "inverse_every": 1},
    {"momentum": "quadratic", "gamma": 1e-2, "damping_every": 5, "gamma_every": 10},
])
def test_kfac_fits_relu_regression(options):
    X, Y = data.regression_1d()
    model = MLP([1, 16, 16, 1])
    problem, theta0 = Problem(model, "mse", X, Y), model.init(0)
    theta, state, infos = run(KFAC(**options), problem, theta0, 50)
    assert np.all(np.isfinite(theta))
    assert problem.value(theta) < problem.value(theta0) / 5
    for info in infos:
        assert set(info) >= {"loss", "grad_norm", "loss_after", "step_size", "damping", "accepted"}
        assert not info["accepted"] or info["loss_after"] <= info["loss"]
    assert state.step == 50 and problem.counts["kfac_factors"] == 50
    assert min(info["damping"] for info in infos) < KFAC().damping  # good steps (rho > 3/4) lowered it


def test_kfac_fits_softmax_classification():
    X, labels = data.two_spirals(n=200)
    Y = data.one_hot(labels[:, 0].astype(int), 2)
    model = MLP([2, 16, 16, 2])
    problem, theta0 = Problem(model, "softmax_cross_entropy", X, Y), model.init(0)
    theta, _, infos = run(KFAC(), problem, theta0, 50)
    assert problem.value(theta) < 0.4 * problem.value(theta0)
    assert sum(info["accepted"] for info in infos) >= 40


@pytest.mark.parametrize("learning_rate", [1e3, 1e300])
def test_rejected_steps_keep_theta_and_raise_damping(learning_rate):
    problem, theta = random_problem(sizes=(3, 8, 2), n=30)
    optimizer = KFAC(learning_rate=learning_rate, momentum=0.5)
    state = optimizer.init(theta)
    new_theta, new_state, info = optimizer.step(problem, theta, state)
    assert not info["accepted"]
    np.testing.assert_array_equal(new_theta, theta)
    assert info["loss_after"] == info["loss"]  # the loss at the returned (unchanged) theta
    assert new_state.damping == pytest.approx(1.5 * state.damping)
    assert not np.any(new_state.update)


def test_factor_averages_and_inverse_schedule():
    problem, theta = random_problem(sizes=(3, 5, 2), n=15)
    optimizer = KFAC(learning_rate=1e-3, ema_decay=0.95, inverse_every=2, seed=4)
    state0 = optimizer.init(theta)
    theta1, state1, _ = optimizer.step(problem, theta, state0)
    _, state2, _ = optimizer.step(problem, theta1, state1)
    first = kfac_factors(problem.model, theta, problem.X, problem.loss, rng=np.random.default_rng([4, 0]))
    second = kfac_factors(problem.model, theta1, problem.X, problem.loss,
                          rng=np.random.default_rng([4, 1]))
    for (A, G), (A1, G1), (A2, G2) in zip(state2.factors, first, second):
        np.testing.assert_allclose(A, (A1 + A2) / 2, atol=1e-14)
        np.testing.assert_allclose(G, (G1 + G2) / 2, atol=1e-14)
    assert state2.eigen is state1.eigen  # step 1 reuses the decompositions of step 0
    _, state3, _ = optimizer.step(problem, theta1, state2)
    assert state3.eigen is not state2.eigen


def test_runs_are_reproducible():
    problem, theta = random_problem(sizes=(3, 6, 2), n=20)
    first, _, _ = run(KFAC(seed=1), problem, theta, 5)
    again, _, _ = run(KFAC(seed=1), problem, theta, 5)
    other, _, _ = run(KFAC(seed=2), problem, theta, 5)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("options, error", [
    ({"learning_rate": 0.0}, ValueError),
    ({"damping": -1.0}, ValueError),
    ({"ema_decay": 1.0}, ValueError),
    ({"inverse_every": 0}, ValueError),
    ({"inverse_every": 2.5}, ValueError),
    ({"momentum": 1.0}, ValueError),
    ({"fisher": "true"}, UnknownNameError),
    ({"momentum": "adaptive"}, ArgumentError),
    ({"momentum": "quadratic", "learning_rate": 0.1}, ArgumentError),
    ({"gamma": 0.0}, ArgumentError),
    ({"damping_every": 0}, ArgumentError),
    ({"gamma_every": 1.5}, ArgumentError),
    ({"curvature_batch_size": 0}, ArgumentError),
])
def test_hyperparameters_are_validated(options, error):
    with pytest.raises(error):
        KFAC(**options)


# -- the complete method: momentum from the quadratic model, separate gamma, schedules -------


def dense_direction(factors, gradient, layout, gamma):
    """Minus the gradient through each layer's damped dense block kron(A + π√γ I, G + √γ/π I)."""
    direction = np.empty_like(gradient)
    for layer, (A, G) in zip(layout, factors):
        pi = np.sqrt(np.trace(A) / len(A) / (np.trace(G) / len(G)))
        damped = kfac_block(A + pi * np.sqrt(gamma) * np.eye(len(A)),
                            G + np.sqrt(gamma) / pi * np.eye(len(G)))
        direction[layer.params] = -np.linalg.solve(damped, gradient[layer.params])
    return direction


def dense_model_minimiser(F, damping, gradient, vectors):
    """argmin over w of g.Vw + (Vw).(F + λI)(Vw) / 2, as a least-squares problem on a Cholesky factor.

    With F + λI = C Cᵀ the model is |Cᵀ V w + C⁻¹ g|² / 2 minus a constant.
    """
    C = np.linalg.cholesky(F + damping * np.eye(len(F)))
    V = np.stack(vectors, axis=1)
    w, *_ = np.linalg.lstsq(C.T @ V, -np.linalg.solve(C, gradient), rcond=None)
    return w


def dense_model(F, damping, gradient, delta):
    return gradient @ delta + 0.5 * delta @ (F + damping * np.eye(len(F))) @ delta


def test_quadratic_momentum_minimises_the_dense_model_on_the_plane_of_the_last_update():
    problem, theta0 = random_problem(sizes=(3, 5, 2), n=25, l2=0.01, seed=3)
    optimizer = KFAC(momentum="quadratic", fisher="exact", inverse_every=1, damping=0.1)
    theta1, state1, info1 = optimizer.step(problem, theta0, optimizer.init(theta0))
    theta2, state2, info2 = optimizer.step(problem, theta1, state1)
    assert info1["accepted"] and info2["accepted"]
    # Step 1: no previous update, so mu = 0 and alpha is the default K-FAC's alpha*.
    default = KFAC(fisher="exact", damping=0.1)
    default_theta1, _, default_info1 = default.step(problem, theta0, default.init(theta0))
    assert info1["momentum"] == 0 and info1["curvature_products"] == 1
    np.testing.assert_array_equal(theta1, default_theta1)
    assert info1["step_size"] == default_info1["step_size"]
    # Step 2: the factors are the mean of the exact ones at theta0 and theta1 (decay min(0.95, 1/2)).
    factors = [((A0 + A1) / 2, (G0 + G1) / 2) for (A0, G0), (A1, G1) in zip(
        kfac_factors(problem.model, theta0, problem.X, problem.loss, problem.Y, "exact"),
        kfac_factors(problem.model, theta1, problem.X, problem.loss, problem.Y, "exact"))]
    gradient, damping = problem.grad(theta1), info2["damping"]
    direction = dense_direction(factors, gradient, problem.model.layout, damping + problem.l2)
    previous = theta1 - theta0
    alpha, mu = dense_model_minimiser(problem.ggn(theta1), damping, gradient, [direction, previous])
    assert info2["step_size"] == pytest.approx(alpha, rel=1e-8)
    assert info2["momentum"] == pytest.approx(mu, rel=1e-8)
    assert abs(mu) > 1e-3 and info2["curvature_products"] == 2
    np.testing.assert_allclose(theta2 - theta1, alpha * direction + mu * previous, rtol=1e-7, atol=1e-13)
    # It is the model's minimum on that plane: better than alpha* alone, and than nearby points.
    F = problem.ggn(theta1)
    best = dense_model(F, damping, gradient, theta2 - theta1)
    alone = dense_model_minimiser(F, damping, gradient, [direction])[0] * direction
    assert best < dense_model(F, damping, gradient, alone)
    for d_alpha, d_mu in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)]:
        nearby = (alpha + d_alpha) * direction + (mu + d_mu) * previous
        assert best < dense_model(F, damping, gradient, nearby)


def test_greedy_gamma_keeps_the_candidate_with_the_lowest_dense_model():
    problem, theta = random_problem(sizes=(3, 5, 2), n=25, l2=0.01, seed=4)
    gamma, damping = 0.5, 0.1
    optimizer = KFAC(fisher="exact", damping=damping, gamma=gamma, gamma_every=2, adapt_damping=False)
    theta1, state1, info1 = optimizer.step(problem, theta, optimizer.init(theta))
    assert info1["gamma"] == gamma and state1.gamma == gamma and info1["curvature_products"] == 1
    _, state2, info2 = optimizer.step(problem, theta1, state1)  # (t + 1) % 2 == 0: three candidates
    omega = GAMMA_DECAY**2
    candidates = [gamma, gamma * omega, gamma / omega]
    assert info2["curvature_products"] == 3
    factors = [((A0 + A1) / 2, (G0 + G1) / 2) for (A0, G0), (A1, G1) in zip(
        kfac_factors(problem.model, theta, problem.X, problem.loss, problem.Y, "exact"),
        kfac_factors(problem.model, theta1, problem.X, problem.loss, problem.Y, "exact"))]
    gradient, F = problem.grad(theta1), problem.ggn(theta1)
    models = []
    for candidate in candidates:
        direction = dense_direction(factors, gradient, problem.model.layout, candidate)
        [alpha] = dense_model_minimiser(F, damping, gradient, [direction])
        models.append(dense_model(F, damping, gradient, alpha * direction))
    assert max(models) - min(models) > 1e-6 * abs(min(models))  # the choice matters here
    chosen = candidates[int(np.argmin(models))]
    assert info2["gamma"] == pytest.approx(chosen, rel=1e-15) and state2.gamma == info2["gamma"]
    assert info2["damping"] == damping  # lambda untouched by the gamma search


def test_gamma_without_adaptation_stays_fixed():
    problem, theta = random_problem(sizes=(3, 5, 2), n=25, seed=5)
    optimizer = KFAC(gamma=0.2, adapt_gamma=False, gamma_every=1)
    theta, state, infos = run(optimizer, problem, theta, 3)
    assert [info["gamma"] for info in infos] == [0.2] * 3 and state.gamma == 0.2
    assert all(info["curvature_products"] == 1 for info in infos)


def test_damping_is_adapted_every_damping_every_steps_and_after_rejections():
    X, Y = data.regression_1d()
    model = MLP([1, 16, 16, 1])
    problem = Problem(model, "mse", X, Y)
    _, _, infos = run(KFAC(damping_every=3), problem, model.init(0), 12)
    dampings = [info["damping"] for info in infos]
    for t, info in enumerate(infos[:-1]):
        adapted = (t + 1) % 3 == 0
        assert np.isnan(info["rho"]) != (adapted and info["accepted"])
        if info["accepted"] and not adapted:
            assert dampings[t + 1] == dampings[t]
        elif not info["accepted"]:
            assert dampings[t + 1] == pytest.approx(1.5 * dampings[t])
    assert len(set(dampings)) > 1


@pytest.mark.parametrize("options", [{}, {"momentum": "quadratic"},
                                     {"momentum": "quadratic", "gamma": 0.1, "gamma_every": 1}])
def test_rho_is_one_on_a_quadratic(options):
    # The undamped model of a linear least-squares problem is exact whatever alpha, mu and gamma.
    problem, _ = linear_regression()
    optimizer = KFAC(damping=1.0, fisher="exact", **options)
    theta, state = np.zeros(4), optimizer.init(np.zeros(4))
    for _ in range(3):
        theta, state, info = optimizer.step(problem, theta, state)
        assert info["accepted"] and info["rho"] == pytest.approx(1.0, rel=1e-9)


def test_solve_quadratic_model_falls_back_to_the_first_vector():
    C = np.array([[2.0, 1.0], [1.0, 3.0]])
    np.testing.assert_allclose(solve_quadratic_model(np.array([1.0, -1.0]), C),
                               -np.linalg.solve(C, [1.0, -1.0]), rtol=1e-15)
    parallel = np.array([[2.0, 4.0], [4.0, 8.0]])  # the two vectors are parallel: C is singular
    np.testing.assert_array_equal(solve_quadratic_model(np.array([1.0, 2.0]), parallel), [-0.5, 0.0])
    np.testing.assert_array_equal(solve_quadratic_model(np.array([1.0]), np.array([[0.0]])), [0.0])


def test_a_batch_smaller_than_a_factor_warns():
    problem, theta = random_problem(sizes=(3, 8, 2), n=30)  # factors of 4, 8, 9 and 2 rows
    optimizer = KFAC()
    with pytest.warns(SmallBatchWarning, match="batch of 8 examples, fewer than .* 9 rows"):
        optimizer.step(problem.subset(np.arange(8)), theta, optimizer.init(theta))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer.step(problem.subset(np.arange(9)), theta, optimizer.init(theta))


def test_curvature_batch_carries_the_factors_and_the_model_while_the_gradient_stays_whole():
    problem, theta = random_problem(sizes=(3, 5, 2), n=40, l2=0.01, seed=6)
    size, seed, damping = 15, 7, 0.1
    optimizer = KFAC(damping=damping, curvature_batch_size=size, seed=seed, fisher="exact")
    new_theta, state, info = optimizer.step(problem, theta, optimizer.init(theta))
    curvature = problem.minibatch(size, seed)  # step 0 draws it with seed + 0
    factors = kfac_factors(problem.model, theta, curvature.X, problem.loss, curvature.Y, "exact")
    for (A, G), (A_sub, G_sub) in zip(state.factors, factors):
        np.testing.assert_array_equal(A, A_sub)
        np.testing.assert_array_equal(G, G_sub)
    gradient = problem.grad(theta)
    direction = dense_direction(factors, gradient, problem.model.layout, damping + problem.l2)
    [alpha] = dense_model_minimiser(curvature.ggn(theta), damping, gradient, [direction])
    assert info["step_size"] == pytest.approx(alpha, rel=1e-8)
    np.testing.assert_allclose(new_theta - theta, alpha * direction, rtol=1e-7, atol=1e-13)
    assert info["loss"] == pytest.approx(problem.value(theta), rel=1e-15)  # the whole problem's loss
