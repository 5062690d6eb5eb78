"""Neural-network basics, written out in NumPy so every step can be read: losses and their gradients, gradient
descent / momentum / Adam on 2-D loss surfaces, activations, and a multilayer perceptron with a hand-written
backward pass (the lecture ``lectures/neural_network_basics.ipynb``).

Why by hand when PyTorch does all of it: the lecture's point is to *see* backpropagation and the optimiser's update
rule. Everything hand-written here is checked against the field's library — the MLP's gradients against
``torch.autograd`` and central finite differences (:func:`gradient_check`), the losses against their closed forms in
the unit tests — and the architectures lecture then uses PyTorch throughout.

The Playground problem: :func:`playground_circle` reproduces the data generator of the TensorFlow Playground
(``playground.tensorflow.org``, dataset "circle": 500 points, radius 5, the inner disc labelled +1, the outer ring −1)
and :class:`MLP` with ``output="tanh"`` and ``loss="squared"`` is the Playground's network (tanh output, error
``½(output − target)²``, weights drawn uniformly from [−0.5, 0.5], biases 0.1, the gradient averaged over a batch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

# -- losses ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loss:
    """A loss of one number (the error ``prediction − target`` for regression, the margin ``y·f(x)`` with
    ``y ∈ {−1, +1}`` for classification) and its derivative with respect to that number."""

    name: str
    kind: str  # "regression" (of the error) or "classification" (of the margin)
    value: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray], np.ndarray]


def _huber(delta: float) -> Loss:
    def value(e):
        a = np.abs(e)
        return np.where(a <= delta, 0.5 * e**2, delta * (a - 0.5 * delta))

    return Loss(f"Huber (δ={delta:g})", "regression", value, lambda e: np.clip(e, -delta, delta))


def losses(delta: float = 1.0) -> dict[str, Loss]:
    """The lecture's five losses: MSE, MAE and Huber (``delta``) of the error; cross-entropy (the logistic loss
    ``log(1 + e^{−m})``, i.e. binary cross-entropy of ``sigmoid(f)``) and hinge ``max(0, 1 − m)`` of the margin."""
    if delta <= 0:
        raise ValueError(f"delta must be positive, got {delta}")
    return {
        "mse": Loss("MSE", "regression", lambda e: e**2, lambda e: 2 * e),
        "mae": Loss("MAE", "regression", np.abs, np.sign),
        "huber": _huber(delta),
        "cross_entropy": Loss(
            "cross-entropy", "classification", lambda m: np.logaddexp(0.0, -m), lambda m: -special.expit(-m)
        ),
        "hinge": Loss("hinge", "classification", lambda m: np.maximum(0.0, 1 - m), lambda m: -(m < 1).astype(float)),
    }


def plot_losses(delta: float = 1.0, span: float = 3.0, axes=None):
    """Four panels: regression losses and their gradients against the error, classification losses and their
    gradients against the margin."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    x = np.linspace(-span, span, 601)
    for loss in losses(delta).values():
        i = 0 if loss.kind == "regression" else 2
        axes[i].plot(x, loss.value(x), label=loss.name)
        axes[i + 1].plot(x, loss.grad(x), label=loss.name)
    titles = ("loss vs error", "gradient vs error", "loss vs margin y·f(x)", "gradient vs margin")
    for ax, title, xlabel in zip(axes, titles, ("error", "error", "margin", "margin"), strict=True):
        ax.set(title=title, xlabel=xlabel)
        ax.axhline(0, color="grey", lw=0.5)
        ax.legend(fontsize=8)
    axes[0].set_ylim(-0.2, span**2 / 2)
    return axes


def line_with_outlier(n: int = 30, outlier: float = 30.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x``, ``y = 2x + 1 + noise`` and the same ``y`` with one point (the rightmost) moved up by ``outlier``."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0, 5, n))
    y = 2 * x + 1 + rng.normal(0, 0.5, n)
    y_out = y.copy()
    y_out[-1] += outlier
    return x, y, y_out


def fit_line(x, y, loss: Loss) -> tuple[float, float]:
    """``(slope, intercept)`` minimising the mean ``loss`` of the errors (Nelder-Mead: MAE has no gradient at 0)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    start = np.polyfit(x, y, 1) if loss.name != "MAE" else np.array([0.0, float(np.median(y))])
    result = optimize.minimize(
        lambda p: float(np.mean(loss.value(p[0] * x + p[1] - y))),
        start,
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000},
    )
    return float(result.x[0]), float(result.x[1])


def outlier_table(x, y, y_out, delta: float = 1.0) -> pd.DataFrame:
    """Slope and intercept of a line fitted with each regression loss, without and with the outlier, and how far
    the outlier moved the slope."""
    rows = {}
    for loss in losses(delta).values():
        if loss.kind != "regression":
            continue
        clean, dirty = fit_line(x, y, loss), fit_line(x, y_out, loss)
        rows[loss.name] = {
            "slope (clean)": clean[0],
            "intercept (clean)": clean[1],
            "slope (outlier)": dirty[0],
            "intercept (outlier)": dirty[1],
            "slope shift": dirty[0] - clean[0],
        }
    return pd.DataFrame(rows).T


# -- optimisers on 2-D surfaces ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Surface:
    """A 2-D loss surface: value, gradient, a start point, the plotting box and its known minima."""

    name: str
    f: Callable[[np.ndarray, np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray], np.ndarray]
    start: tuple[float, float]
    box: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax
    minima: tuple[tuple[float, float], ...]


def ill_conditioned_quadratic(condition: float = 25.0) -> Surface:
    """``f = ½(x² + κ y²)``: curvature ``κ`` times larger along y than along x (the condition number)."""
    return Surface(
        f"quadratic (condition number {condition:g})",
        lambda x, y: 0.5 * (x**2 + condition * y**2),
        lambda p: np.array([p[0], condition * p[1]]),
        (-4.5, 1.5),
        (-5, 5, -2, 2),
        ((0.0, 0.0),),
    )


def himmelblau() -> Surface:
    """Himmelblau's function ``(x² + y − 11)² + (x + y² − 7)²``, non-convex with four minima (value 0) and a local
    maximum between them: where an optimiser ends depends on its path."""
    return Surface(
        "Himmelblau (non-convex, four minima)",
        lambda x, y: (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2,
        lambda p: np.array(
            [
                4 * p[0] * (p[0] ** 2 + p[1] - 11) + 2 * (p[0] + p[1] ** 2 - 7),
                2 * (p[0] ** 2 + p[1] - 11) + 4 * p[1] * (p[0] + p[1] ** 2 - 7),
            ]
        ),
        (-0.5, -1.0),
        (-5, 5, -5, 5),
        ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848127)),
    )


def optimise(
    grad: Callable[[np.ndarray], np.ndarray],
    start: Sequence[float],
    method: str = "gd",
    lr: float = 0.01,
    steps: int = 100,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> np.ndarray:
    """The path (``steps + 1`` points) of one optimiser from ``start``:

    - ``gd``: ``p ← p − lr·g``;
    - ``momentum`` (heavy ball, PyTorch's SGD form): ``v ← μ·v + g``, ``p ← p − lr·v``;
    - ``adam``: bias-corrected moving averages ``m``, ``v`` of ``g`` and ``g²``, ``p ← p − lr·m̂/(√v̂ + ε)``.

    A diverging path stops growing at 1e6 (the rest of the path repeats the last point) rather than overflowing.
    """
    if method not in ("gd", "momentum", "adam"):
        raise ValueError(f"method must be 'gd', 'momentum' or 'adam', got {method!r}")
    if lr <= 0 or steps < 1:
        raise ValueError(f"lr must be positive and steps >= 1, got lr={lr}, steps={steps}")
    p = np.asarray(start, dtype=float).copy()
    path = [p.copy()]
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t in range(1, steps + 1):
        if np.abs(p).max() > 1e6:
            path.append(p.copy())
            continue
        g = grad(p)
        if method == "gd":
            p = p - lr * g
        elif method == "momentum":
            m = momentum * m + g
            p = p - lr * m
        else:
            m = betas[0] * m + (1 - betas[0]) * g
            v = betas[1] * v + (1 - betas[1]) * g**2
            p = p - lr * (m / (1 - betas[0] ** t)) / (np.sqrt(v / (1 - betas[1] ** t)) + eps)
        path.append(p.copy())
    return np.array(path)


def path_table(surface: Surface, paths: Mapping[str, np.ndarray], tol: float = 1e-2) -> pd.DataFrame:
    """For each path: the final loss, the nearest minimum and the distance to it, and the first step at which the loss is
    below ``tol`` (NaN when never)."""
    rows = {}
    minima = np.array(surface.minima)
    for name, path in paths.items():
        values = surface.f(path[:, 0], path[:, 1])
        below = np.flatnonzero(values < tol)
        distances = np.linalg.norm(minima - path[-1], axis=1)
        nearest = minima[int(np.argmin(distances))]
        rows[name] = {
            "final loss": float(values[-1]),
            "nearest minimum": f"({nearest[0]:.2f}, {nearest[1]:.2f})",
            "distance to nearest minimum": float(distances.min()),
            f"first step with loss < {tol:g}": float(below[0]) if below.size else np.nan,
        }
    return pd.DataFrame(rows).T


def _contours(ax, surface: Surface, levels: int = 30):
    x0, x1, y0, y1 = surface.box
    xs, ys = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    z = surface.f(xs, ys)
    ax.contour(xs, ys, np.log1p(z), levels=levels, cmap="viridis", linewidths=0.6)
    for mx, my in surface.minima:
        ax.plot(mx, my, "k*", ms=9)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), title=surface.name)


def plot_paths(surface: Surface, paths: Mapping[str, np.ndarray], ax=None):
    """The paths drawn on the contours of ``surface`` (log scale; ★ = minima)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    _contours(ax, surface)
    for k, (name, path) in enumerate(paths.items()):
        ax.plot(path[:, 0], path[:, 1], "-o", ms=2, lw=1.2, color=f"C{k}", label=name)
    ax.legend(fontsize=8)
    return ax


def animate_paths(surface: Surface, paths: Mapping[str, np.ndarray], frames: int = 40, interval: int = 120):
    """A matplotlib animation of the optimisers walking down ``surface`` (``frames`` frames over the whole paths).
    Show it with ``IPython.display.HTML(anim.to_jshtml())``: the frames are embedded in the notebook's output as
    images with JavaScript controls, so they survive in the saved notebook and its HTML export."""
    import matplotlib.pyplot as plt
    from matplotlib import animation

    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=60)
    _contours(ax, surface)
    lines = {
        name: (
            ax.plot([], [], "-", lw=1.5, color=f"C{k}", label=name)[0],
            ax.plot([], [], "o", ms=6, color=f"C{k}")[0],
        )
        for k, name in enumerate(paths)
    }
    ax.legend(fontsize=8, loc="upper right")
    n = max(len(p) for p in paths.values())
    cut = np.unique(np.linspace(1, n, frames).round().astype(int))

    def draw(i):
        for name, (line, head) in lines.items():
            part = paths[name][: cut[i]]
            line.set_data(part[:, 0], part[:, 1])
            head.set_data(part[-1:, 0], part[-1:, 1])
        ax.set_title(f"{surface.name}: step {cut[i] - 1}")
        return [a for pair in lines.values() for a in pair]

    anim = animation.FuncAnimation(fig, draw, frames=len(cut), interval=interval, blit=False)
    plt.close(fig)
    return anim


# -- activations -------------------------------------------------------------------------------------------------------


def _sigmoid_grad(z):
    s = special.expit(z)
    return s * (1 - s)


def _gelu(z):
    return z * special.ndtr(z)


def _gelu_grad(z):
    return special.ndtr(z) + z * np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)


#: name -> (activation, its derivative); GELU is the exact ``z·Φ(z)`` (Φ the standard normal CDF), as in BERT/GPT
ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "sigmoid": (special.expit, _sigmoid_grad),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
    "gelu": (_gelu, _gelu_grad),
    "linear": (lambda z: z, np.ones_like),
}


def activation(name: str) -> tuple[Callable, Callable]:
    """``(f, f')`` of the activation ``name`` (one of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def plot_activations(names: Sequence[str] = ("sigmoid", "tanh", "relu", "gelu"), span: float = 4.0, axes=None):
    """Each activation and its derivative on ``[−span, span]``."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    z = np.linspace(-span, span, 401)
    for name in names:
        f, df = activation(name)
        axes[0].plot(z, f(z), label=name)
        axes[1].plot(z, df(z), label=name)
    axes[0].set(title="activation f(z)", xlabel="z")
    axes[1].set(title="derivative f'(z)", xlabel="z")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.axhline(0, color="grey", lw=0.5)
    return axes


# -- the multilayer perceptron ----------------------------------------------------------------------------------------


class MLP:
    """A fully connected network in NumPy (float64) with a hand-written backward pass.

    ``sizes`` lists the layer widths, inputs first (``[2, 4, 2, 1]`` is the Playground's 4-2 network). Hidden layers
    use ``activation``; the output uses ``output`` (``tanh`` as the Playground, ``sigmoid``, or ``linear``). ``loss``
    is ``squared`` (``½(out − t)²``, the Playground's) or ``cross_entropy`` (binary, needs ``output="sigmoid"``,
    targets in {0, 1}); both averaged over the batch. ``init``: ``playground`` (uniform [−0.5, 0.5], biases 0.1),
    ``xavier`` (Glorot: normal, variance 2/(fan-in + fan-out)) or ``he`` (normal, variance 2/fan-in), biases 0.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "tanh",
        output: str = "tanh",
        loss: str = "squared",
        init: str = "playground",
        seed: int = 0,
    ):
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes needs at least an input and an output width, all >= 1, got {list(sizes)}")
        if loss not in ("squared", "cross_entropy"):
            raise ValueError(f"loss must be 'squared' or 'cross_entropy', got {loss!r}")
        if loss == "cross_entropy" and output != "sigmoid":
            raise ValueError("the cross-entropy loss here needs output='sigmoid'")
        if init not in ("playground", "xavier", "he"):
            raise ValueError(f"init must be 'playground', 'xavier' or 'he', got {init!r}")
        for name in (activation, output):
            if name not in ACTIVATIONS:
                raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
        self.sizes, self.activation, self.output, self.loss, self.init = list(sizes), activation, output, loss, init
        rng = np.random.default_rng(seed)
        self.weights, self.biases = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            if init == "playground":
                w, b = rng.uniform(-0.5, 0.5, (fan_in, fan_out)), np.full(fan_out, 0.1)
            else:
                var = 2.0 / (fan_in + fan_out) if init == "xavier" else 2.0 / fan_in
                w, b = rng.normal(0.0, np.sqrt(var), (fan_in, fan_out)), np.zeros(fan_out)
            self.weights.append(w)
            self.biases.append(b)

    @property
    def parameters(self) -> list[np.ndarray]:
        """The weight matrices and bias vectors, layer by layer (``W1, b1, W2, b2, ...``), as live arrays."""
        return [a for pair in zip(self.weights, self.biases, strict=True) for a in pair]

    def n_parameters(self) -> int:
        """How many numbers the network learns."""
        return int(sum(p.size for p in self.parameters))

    def forward(self, X: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """The output (one row per example) and the cache of every layer's ``(input, pre-activation)`` for
        :meth:`MLP.backward`."""
        a = np.asarray(X, dtype=float)
        cache = []
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = a @ w + b
            cache.append((a, z))
            a = activation(self.output if i == last else self.activation)[0](z)
        return a, cache

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The network's output for ``X`` (a column)."""
        return self.forward(X)[0]

    def loss_value(self, out: np.ndarray, target: np.ndarray) -> float:
        """The mean loss of outputs ``out`` against ``target`` (same shape)."""
        t = np.asarray(target, float).reshape(out.shape)
        if self.loss == "squared":
            return float(np.mean(0.5 * (out - t) ** 2))
        p = np.clip(out, 1e-12, 1 - 1e-12)
        return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))

    def backward(self, cache, out: np.ndarray, target: np.ndarray) -> list[np.ndarray]:
        """Backpropagation: the gradients of the mean loss with respect to :attr:`MLP.parameters` (same order, same
        shapes). The chain rule, layer by layer from the output: ``δ = ∂L/∂z``, ``∂L/∂W = aᵀδ``, ``∂L/∂b = Σδ``,
        then ``δ ← (δ Wᵀ) ⊙ f'(z)`` of the layer below."""
        t = np.asarray(target, float).reshape(out.shape)
        n = out.shape[0]
        last = len(self.weights) - 1
        a_last, z_last = cache[last]
        if self.loss == "cross_entropy":  # sigmoid + cross-entropy: ∂L/∂z = p − t
            delta = (out - t) / n
        else:
            delta = (out - t) / n * activation(self.output)[1](z_last)
        grads: list[np.ndarray] = []
        for i in range(last, -1, -1):
            a_in, _ = cache[i]
            grads[:0] = [a_in.T @ delta, delta.sum(axis=0)]
            if i > 0:
                delta = (delta @ self.weights[i].T) * activation(self.activation)[1](cache[i - 1][1])
        return grads

    def loss_and_gradients(self, X, y) -> tuple[float, list[np.ndarray]]:
        """Forward, loss, backward in one call."""
        out, cache = self.forward(X)
        return self.loss_value(out, y), self.backward(cache, out, y)

    def sgd_step(self, X, y, lr: float) -> float:
        """One gradient-descent update on the batch ``(X, y)``; returns the batch's loss before the update."""
        loss, grads = self.loss_and_gradients(X, y)
        for p, g in zip(self.parameters, grads, strict=True):
            p -= lr * g
        return loss


def numerical_gradients(mlp: MLP, X, y, eps: float = 1e-6) -> list[np.ndarray]:
    """Central finite differences ``(L(θ + ε) − L(θ − ε)) / 2ε`` of the mean loss, one parameter at a time."""
    grads = []
    for p in mlp.parameters:
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = mlp.loss_value(mlp.predict(X), y)
            p[idx] = old - eps
            down = mlp.loss_value(mlp.predict(X), y)
            p[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def torch_gradients(mlp: MLP, X, y) -> list[np.ndarray]:
    """The same network rebuilt in PyTorch (float64, the same weights) and differentiated by ``torch.autograd``."""
    import torch

    funcs = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "gelu": torch.nn.functional.gelu,
        "linear": lambda z: z,
    }
    params = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in mlp.parameters]
    a = torch.tensor(np.asarray(X, float), dtype=torch.float64)
    last = len(mlp.weights) - 1
    for i in range(last + 1):
        z = a @ params[2 * i] + params[2 * i + 1]
        a = funcs[mlp.output if i == last else mlp.activation](z)
    t = torch.tensor(np.asarray(y, float), dtype=torch.float64).reshape(a.shape)
    if mlp.loss == "squared":
        loss = (0.5 * (a - t) ** 2).mean()
    else:
        loss = torch.nn.functional.binary_cross_entropy(a, t)
    loss.backward()
    return [p.grad.numpy() for p in params]


def max_relative_difference(a: Sequence[np.ndarray], b: Sequence[np.ndarray], floor: float = 1e-8) -> float:
    """``max |a − b| / max(|a| + |b|, floor)`` over every entry of the paired arrays (``floor`` keeps gradients that
    are both ~0 from dividing by zero)."""
    worst = 0.0
    for x, z in zip(a, b, strict=True):
        if x.shape != z.shape:
            raise ValueError(f"shapes differ: {x.shape} vs {z.shape}")
        rel = np.abs(x - z) / np.maximum(np.abs(x) + np.abs(z), floor)
        worst = max(worst, float(rel.max(initial=0.0)))
    return worst


def gradient_check(mlp: MLP, X, y, eps: float = 1e-6) -> dict[str, float]:
    """The hand-written gradients against finite differences and against ``torch.autograd``: the largest relative
    difference of each (and finite differences against autograd, for scale)."""
    mine = mlp.loss_and_gradients(X, y)[1]
    numeric, auto = numerical_gradients(mlp, X, y, eps), torch_gradients(mlp, X, y)
    return {
        "backprop_vs_finite_differences": max_relative_difference(mine, numeric),
        "backprop_vs_autograd": max_relative_difference(mine, auto),
        "finite_differences_vs_autograd": max_relative_difference(numeric, auto),
    }


# -- the TensorFlow Playground problem ---------------------------------------------------------------------------------


def playground_circle(n: int = 500, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The Playground's "circle" data: half the points at radius 0–2.5 (label +1), half at 3.5–5 (label −1), random
    angles; ``noise`` (the Playground's slider, 0–50, in percent of the radius 5) jitters both coordinates. Points in
    random order, ``X`` of shape ``(n, 2)``, ``y`` in {−1, +1}. (scikit-learn's ``make_circles`` puts the points on two
    thin circles instead; this is the Playground's generator, a few lines, so its settings mean the same here.)"""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    rng = np.random.default_rng(seed)
    radius = 5.0
    half = n // 2
    r = np.r_[rng.uniform(0, radius * 0.5, half), rng.uniform(radius * 0.7, radius, n - half)]
    angle = rng.uniform(0, 2 * np.pi, n)
    X = np.c_[r * np.sin(angle), r * np.cos(angle)]
    X += rng.uniform(-radius, radius, X.shape) * noise / 100.0
    y = np.r_[np.ones(half), -np.ones(n - half)]
    order = rng.permutation(n)
    return X[order], y[order]


def split_half(X, y, train_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Playground's "ratio of training to test data": the first ``train_fraction`` of the (shuffled) points
    train, the rest test. Returns ``X_train, y_train, X_test, y_test``."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    k = int(round(len(X) * train_fraction))
    return X[:k], y[:k], X[k:], y[k:]


def accuracy_pm1(mlp: MLP, X, y) -> float:
    """Accuracy for ±1 labels: the sign of the output (for a sigmoid output, whether it is above ½)."""
    out = mlp.predict(X).ravel()
    pred = np.where(out >= (0.5 if mlp.output == "sigmoid" else 0.0), 1.0, -1.0)
    return float(np.mean(pred == np.asarray(y).ravel()))


def train_playground(
    mlp: MLP, X_train, y_train, X_test, y_test, epochs: int = 300, batch_size: int = 10, lr: float = 0.03
) -> pd.DataFrame:
    """Train as the Playground does: the training points in order, one gradient step per ``batch_size`` points
    (the gradient averaged over the batch), ``lr`` fixed. Returns one row per epoch: training and test loss and
    accuracy."""
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr positive, got {epochs}, {batch_size}, {lr}")
    y_train, y_test = np.asarray(y_train, float).reshape(-1, 1), np.asarray(y_test, float).reshape(-1, 1)
    rows = []
    for epoch in range(1, epochs + 1):
        for start in range(0, len(X_train), batch_size):
            mlp.sgd_step(X_train[start : start + batch_size], y_train[start : start + batch_size], lr)
        rows.append(
            {
                "epoch": epoch,
                "train_loss": mlp.loss_value(mlp.predict(X_train), y_train),
                "test_loss": mlp.loss_value(mlp.predict(X_test), y_test),
                "train_accuracy": accuracy_pm1(mlp, X_train, y_train),
                "test_accuracy": accuracy_pm1(mlp, X_test, y_test),
            }
        )
    return pd.DataFrame(rows)


def plot_decision_boundary(mlp: MLP, X_train, y_train, X_test, y_test, ax=None, span: float = 6.0):
    """The network's output over the plane (colour: −1 orange to +1 blue, as the Playground) with the training
    points (circles) and the test points (crosses)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    xs, ys = np.meshgrid(np.linspace(-span, span, 200), np.linspace(-span, span, 200))
    out = mlp.predict(np.c_[xs.ravel(), ys.ravel()]).reshape(xs.shape)
    if mlp.output == "sigmoid":
        out = 2 * out - 1
    ax.contourf(xs, ys, out, levels=np.linspace(-1, 1, 21), cmap="RdBu", alpha=0.6)
    ax.contour(xs, ys, out, levels=[0.0], colors="k", linewidths=1.5)
    for X, y, marker, label in ((X_train, y_train, "o", "train"), (X_test, y_test, "x", "test")):
        y = np.asarray(y).ravel()
        ax.scatter(X[y > 0, 0], X[y > 0, 1], c="tab:blue", marker=marker, s=14, label=f"{label} +1")
        ax.scatter(X[y < 0, 0], X[y < 0, 1], c="tab:orange", marker=marker, s=14, label=f"{label} −1")
    ax.set(xlim=(-span, span), ylim=(-span, span), aspect="equal", title="decision boundary (black: output 0)")
    ax.legend(fontsize=7, loc="lower right")
    return ax


# -- vanishing gradients -----------------------------------------------------------------------------------------------


def gradient_norms_per_layer(
    activation_name: str, depth: int = 10, width: int = 32, n: int = 256, seed: int = 0
) -> np.ndarray:
    """The norm of ``∂L/∂W`` of each layer (input side first) of a ``depth``-layer, ``width``-wide network with
    ``activation_name`` hidden units, at initialisation, on random inputs and targets (the make_moons-free
    version of the experiment: only the network matters here). Sigmoid/tanh use Xavier initialisation, ReLU/GELU
    He initialisation — each its usual one."""
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, width))
    y = rng.normal(size=(n, 1))
    init = "he" if activation_name in ("relu", "gelu") else "xavier"
    mlp = MLP([width] * depth + [1], activation=activation_name, output="linear", init=init, seed=seed)
    grads = mlp.loss_and_gradients(X, y)[1]
    return np.array([np.linalg.norm(g) for g in grads[0::2]])


def plot_gradient_norms(norms: Mapping[str, np.ndarray], ax=None):
    """Gradient norm per layer (log scale), one line per activation."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    for name, values in norms.items():
        ax.semilogy(np.arange(1, len(values) + 1), values, "-o", label=name)
    ax.set(xlabel="layer (1 = next to the input)", ylabel="‖∂L/∂W‖", title="gradient norm per layer at initialisation")
    ax.legend()
    return ax
