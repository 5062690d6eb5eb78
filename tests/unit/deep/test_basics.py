import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from aml.deep import basics


def test_regression_losses_on_known_values():
    ls = basics.losses(delta=1.0)
    e = np.array([-3.0, -0.5, 0.0, 2.0])
    assert np.allclose(ls["mse"].value(e), [9, 0.25, 0, 4])
    assert np.allclose(ls["mse"].grad(e), [-6, -1, 0, 4])
    assert np.allclose(ls["mae"].value(e), [3, 0.5, 0, 2])
    assert np.allclose(ls["mae"].grad(e), [-1, -1, 0, 1])
    assert np.allclose(ls["huber"].value(e), [2.5, 0.125, 0, 1.5])  # quadratic inside δ, linear outside
    assert np.allclose(ls["huber"].grad(e), [-1, -0.5, 0, 1])
    with pytest.raises(ValueError, match="delta"):
        basics.losses(delta=0)


def test_classification_losses_on_known_values_and_gradients_match_finite_differences():
    ls = basics.losses()
    m = np.array([-2.0, 0.0, 0.5, 3.0])
    assert np.allclose(ls["cross_entropy"].value(m), np.log1p(np.exp(-m)))
    assert ls["cross_entropy"].value(np.array([0.0]))[0] == pytest.approx(np.log(2))
    assert np.allclose(ls["hinge"].value(m), [3, 1, 0.5, 0])
    assert np.allclose(ls["hinge"].grad(m), [-1, -1, -1, 0])
    x, h = np.array([-1.3, 0.4, 2.2]), 1e-6
    for loss in ls.values():
        numeric = (loss.value(x + h) - loss.value(x - h)) / (2 * h)
        assert np.allclose(loss.grad(x), numeric, atol=1e-5), loss.name


def test_outlier_moves_the_mse_line_far_more_than_mae_and_huber():
    x, y, y_out = basics.line_with_outlier(seed=0)
    assert (y_out - y)[-1] == pytest.approx(30.0) and np.count_nonzero(y_out - y) == 1
    table = basics.outlier_table(x, y, y_out)
    assert table.loc["MSE", "slope (clean)"] == pytest.approx(np.polyfit(x, y, 1)[0], abs=1e-4)
    shift = table["slope shift"].abs()
    assert shift["MSE"] > 5 * shift["Huber (δ=1)"] and shift["MSE"] > 5 * shift["MAE"]


def test_optimisers_reach_the_quadratic_minimum_and_gd_diverges_above_two_over_curvature():
    s = basics.ill_conditioned_quadratic(25)
    for method, lr in (("gd", 0.04), ("momentum", 0.01), ("adam", 0.3)):
        path = basics.optimise(s.grad, s.start, method, lr=lr, steps=200)
        assert path.shape == (201, 2)
        assert np.linalg.norm(path[-1]) < 0.05, method
    diverged = basics.optimise(s.grad, s.start, "gd", lr=0.09, steps=100)  # 0.09 > 2/25
    assert np.isfinite(diverged).all() and np.abs(diverged[-1]).max() > 1e3
    table = basics.path_table(s, {"gd": basics.optimise(s.grad, s.start, "gd", lr=0.04, steps=200)})
    assert table.loc["gd", "final loss"] < 1e-3
    with pytest.raises(ValueError, match="method"):
        basics.optimise(s.grad, s.start, "lbfgs")


def test_himmelblau_gradient_and_minima():
    s = basics.himmelblau()
    for mx, my in s.minima:
        assert s.f(mx, my) == pytest.approx(0, abs=1e-8)
    p, h = np.array([0.7, -1.9]), 1e-6
    numeric = [
        (s.f(p[0] + h, p[1]) - s.f(p[0] - h, p[1])) / (2 * h),
        (s.f(p[0], p[1] + h) - s.f(p[0], p[1] - h)) / (2 * h),
    ]
    assert np.allclose(s.grad(p), numeric, rtol=1e-6)


def test_animation_renders_frames_to_jshtml():
    s = basics.ill_conditioned_quadratic()
    paths = {"gd": basics.optimise(s.grad, s.start, "gd", lr=0.04, steps=10)}
    html = basics.animate_paths(s, paths, frames=3).to_jshtml()
    assert "<script" in html and html.count("data:image/png;base64") >= 3


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "gelu"])
def test_activation_derivatives_match_finite_differences(name):
    f, df = basics.activation(name)
    z, h = np.array([-2.5, -0.3, 0.4, 1.7]), 1e-6
    assert np.allclose(df(z), (f(z + h) - f(z - h)) / (2 * h), atol=1e-6)


def test_gelu_matches_torch():
    torch = pytest.importorskip("torch")
    z = np.linspace(-3, 3, 7)
    assert np.allclose(basics.activation("gelu")[0](z), torch.nn.functional.gelu(torch.tensor(z)).numpy())
    with pytest.raises(ValueError, match="unknown activation"):
        basics.activation("swish")


def test_mlp_shapes_parameters_and_seeded_init():
    mlp = basics.MLP([2, 4, 2, 1], seed=3)
    assert [p.shape for p in mlp.parameters] == [(2, 4), (4,), (4, 2), (2,), (2, 1), (1,)]
    assert mlp.n_parameters() == 8 + 4 + 8 + 2 + 2 + 1
    assert np.abs(mlp.weights[0]).max() <= 0.5 and np.all(mlp.biases[0] == 0.1)  # the Playground's init
    out, cache = mlp.forward(np.zeros((5, 2)))
    assert out.shape == (5, 1) and len(cache) == 3 and np.all(np.abs(out) < 1)
    again = basics.MLP([2, 4, 2, 1], seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(mlp.parameters, again.parameters, strict=True))
    with pytest.raises(ValueError, match="sigmoid"):
        basics.MLP([2, 1], loss="cross_entropy", output="tanh")
    with pytest.raises(ValueError, match="unknown activation"):
        basics.MLP([2, 1], activation="swish")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"activation": "tanh", "output": "tanh", "loss": "squared"},
        {"activation": "relu", "output": "sigmoid", "loss": "cross_entropy", "init": "he"},
        {"activation": "gelu", "output": "linear", "loss": "squared", "init": "xavier"},
    ],
)
def test_backprop_matches_finite_differences_and_autograd(kwargs):
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3))
    y = (rng.random((12, 1)) > 0.5).astype(float)
    mlp = basics.MLP([3, 5, 4, 1], seed=1, **kwargs)
    check = basics.gradient_check(mlp, X, y)
    assert check["backprop_vs_autograd"] < 1e-10
    assert check["backprop_vs_finite_differences"] < 1e-6


def test_sgd_step_lowers_the_loss_and_max_relative_difference():
    X, y = basics.playground_circle(40, seed=0)
    mlp = basics.MLP([2, 4, 2, 1], seed=0)
    before = mlp.sgd_step(X, y.reshape(-1, 1), lr=0.03)
    assert mlp.loss_value(mlp.predict(X), y.reshape(-1, 1)) < before
    a = [np.array([1.0, 0.0])]
    assert basics.max_relative_difference(a, [np.array([1.0, 0.0])]) == 0
    assert basics.max_relative_difference(a, [np.array([3.0, 0.0])]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="shapes"):
        basics.max_relative_difference(a, [np.zeros(3)])


def test_playground_circle_data_and_split():
    X, y = basics.playground_circle(500, noise=0, seed=0)
    r = np.linalg.norm(X, axis=1)
    assert X.shape == (500, 2) and set(np.unique(y)) == {-1.0, 1.0} and (y == 1).sum() == 250
    assert r[y == 1].max() <= 2.5 and r[y == -1].min() >= 3.5 and r.max() <= 5
    assert np.array_equal(X, basics.playground_circle(500, seed=0)[0])
    Xtr, ytr, Xte, yte = basics.split_half(X, y)
    assert len(Xtr) == len(Xte) == 250
    with pytest.raises(ValueError):
        basics.split_half(X, y, 1.0)


def test_train_playground_learns_the_circle_quickly():
    X, y = basics.playground_circle(500, seed=0)
    parts = basics.split_half(X, y)
    mlp = basics.MLP([2, 4, 2, 1], seed=0)
    history = basics.train_playground(mlp, *parts, epochs=100)
    assert list(history.columns) == ["epoch", "train_loss", "test_loss", "train_accuracy", "test_accuracy"]
    assert len(history) == 100 and history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["test_accuracy"].iloc[-1] > 0.9


def test_vanishing_gradients_sigmoid_vs_relu():
    sig = basics.gradient_norms_per_layer("sigmoid", depth=8, seed=0)
    relu = basics.gradient_norms_per_layer("relu", depth=8, seed=0)
    assert sig.shape == relu.shape == (8,)
    assert sig[0] / sig[-1] < 1e-3  # shrinks towards the input
    assert relu[0] / relu[-1] > 1e-2
    assert np.array_equal(sig, basics.gradient_norms_per_layer("sigmoid", depth=8, seed=0))


def test_plots_draw():
    import matplotlib.pyplot as plt

    basics.plot_losses()
    basics.plot_activations()
    s = basics.himmelblau()
    basics.plot_paths(s, {"gd": basics.optimise(s.grad, s.start, "gd", lr=0.01, steps=5)})
    X, y = basics.playground_circle(40)
    basics.plot_decision_boundary(basics.MLP([2, 3, 1]), X, y, X, y)
    basics.plot_gradient_norms({"relu": np.array([1.0, 2.0])})
    plt.close("all")
