"""Fits of the scaling-law analysis (recipe: "Scaling Laws").

- IsoFLOP parabola: at a fixed compute budget, validation loss against ln N is a parabola whose
  vertex is the compute-optimal model size N*(C).
- Power laws: N*(C) = A·C^a and D*(C) = B·C^b, fitted as lines in log-log space (with R²).
- Two-stage downstream forecast: (1) the compute-optimal models' NLL of the correct answer on a
  downstream proxy task against training FLOPs (a power law), (2) task accuracy against that NLL
  (a sigmoid from chance to 1), so accuracy at a larger budget is forecast through its NLL.
- Proxy task: cloze prompts cut from held-out text; the correct continuation is ranked by
  log-likelihood against continuations taken from elsewhere in the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Parabola:
    coeffs: tuple[float, float, float]  # loss = c2·x² + c1·x + c0 with x = ln N
    n_opt: float  # compute-optimal size
    loss_opt: float
    fitted: bool  # False: too few points or no minimum; n_opt is then the best observed point


def fit_parabola(sizes: np.ndarray, losses: np.ndarray) -> Parabola:
    """Vertex of a parabola in ln N through (N, loss); falls back to the best point when the
    points cannot define a minimum (fewer than three, or no upward curvature)."""
    sizes, losses = np.asarray(sizes, float), np.asarray(losses, float)
    best = int(np.argmin(losses))
    if len(sizes) >= 3:
        c2, c1, c0 = np.polyfit(np.log(sizes), losses, 2)
        if c2 > 0:
            x = -c1 / (2 * c2)
            return Parabola((float(c2), float(c1), float(c0)), float(np.exp(x)), float(c0 - c1 * c1 / (4 * c2)), True)
    return Parabola((0.0, 0.0, float(losses[best])), float(sizes[best]), float(losses[best]), False)


@dataclass(frozen=True)
class PowerLaw:
    coef: float  # y = coef · x^exponent
    exponent: float
    r2: float

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.coef * np.power(x, self.exponent)


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0


def fit_power_law(x: np.ndarray, y: np.ndarray) -> PowerLaw:
    """Least squares of ln y = ln coef + exponent·ln x; R² in log space."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if len(lx) < 2 or np.ptp(lx) == 0:
        raise ValueError("a power law needs at least two distinct x values")
    slope, intercept = np.polyfit(lx, ly, 1)
    return PowerLaw(float(np.exp(intercept)), float(slope), _r2(ly, slope * lx + intercept))


@dataclass(frozen=True)
class Sigmoid:
    """accuracy = floor + (1 - floor) · σ(-k·(nll - mid))."""

    floor: float
    k: float
    mid: float
    r2: float

    def __call__(self, nll: float | np.ndarray) -> float | np.ndarray:
        return self.floor + (1.0 - self.floor) / (1.0 + np.exp(self.k * (np.asarray(nll) - self.mid)))


def fit_sigmoid(nll: np.ndarray, acc: np.ndarray, floor: float, eps: float = 1e-3) -> Sigmoid:
    """Fit the accuracy sigmoid by least squares on the logit of the rescaled accuracy (clipped to
    [eps, 1 - eps]): logit((acc - floor) / (1 - floor)) = -k·nll + k·mid."""
    nll, acc = np.asarray(nll, float), np.asarray(acc, float)
    if len(nll) < 2 or np.ptp(nll) == 0:
        raise ValueError("a sigmoid fit needs at least two distinct NLL values")
    p = np.clip((acc - floor) / (1.0 - floor), eps, 1.0 - eps)
    slope, intercept = np.polyfit(nll, np.log(p / (1 - p)), 1)
    k = -float(slope)
    mid = float(intercept / k) if k != 0 else float(nll.mean())
    fit = Sigmoid(floor, k, mid, 0.0)
    return Sigmoid(floor, k, mid, _r2(acc, fit(nll)))


# ---------------------------------------------------------------------------------------------
# Proxy downstream task


@dataclass(frozen=True)
class ClozeTask:
    prompts: np.ndarray  # [P, prompt_len] token ids
    choices: np.ndarray  # [P, n_choices, answer_len]; choice 0 is the true continuation

    @property
    def chance(self) -> float:
        return 1.0 / self.choices.shape[1]


def make_cloze(tokens: np.ndarray, n: int, prompt_len: int, answer_len: int, n_choices: int, seed: int) -> ClozeTask:
    """Cloze prompts from a held-out stream; distractors are spans from other random positions."""
    span = prompt_len + answer_len
    if len(tokens) < span + 1:
        raise ValueError(f"stream of {len(tokens)} tokens is too short for {span}-token cloze items")
    rng = np.random.default_rng(seed)
    tokens = tokens.astype(np.int64)
    starts = rng.integers(0, len(tokens) - span, size=n)
    prompts = np.stack([tokens[s : s + prompt_len] for s in starts])
    choices = np.empty((n, n_choices, answer_len), dtype=np.int64)
    for i, s in enumerate(starts):
        choices[i, 0] = tokens[s + prompt_len : s + span]
        for j in range(1, n_choices):
            while True:  # a distractor must differ from the true answer
                d = int(rng.integers(0, len(tokens) - answer_len))
                cand = tokens[d : d + answer_len]
                if not np.array_equal(cand, choices[i, 0]):
                    break
            choices[i, j] = cand
    return ClozeTask(prompts, choices)


@torch.no_grad()
def score_cloze(model: nn.Module, task: ClozeTask) -> tuple[float, float]:
    """(mean per-token NLL of the true answer, accuracy of log-likelihood ranking)."""
    was_training = model.training
    model.eval()
    n, c, a = task.choices.shape
    plen = task.prompts.shape[1]
    seqs = np.concatenate([np.repeat(task.prompts[:, None], c, axis=1), task.choices], axis=2).reshape(n * c, -1)
    ids = torch.from_numpy(seqs)
    logp = torch.log_softmax(model(ids).float(), dim=-1)  # [n*c, T, V]
    picked = logp[:, plen - 1 : -1].gather(-1, ids[:, plen:].unsqueeze(-1)).squeeze(-1)  # [n*c, a]
    total = picked.sum(-1).view(n, c)
    model.train(was_training)
    nll = float(-total[:, 0].mean() / a)
    acc = float((total[:, 0] > total[:, 1:].max(dim=1).values).float().mean())
    return nll, acc


# ---------------------------------------------------------------------------------------------
# Plots


def plot_isoflops(points: list[dict], parabolas: dict[float, Parabola], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for budget, par in sorted(parabolas.items()):
        pts = sorted((p for p in points if p["budget"] == budget), key=lambda p: p["params"])
        xs = np.array([p["params"] for p in pts])
        line = ax.plot(xs, [p["val_loss"] for p in pts], "o", label=f"C={budget:.1e}")[0]
        if par.fitted:
            grid = np.exp(np.linspace(np.log(xs.min()), np.log(xs.max()), 50))
            ax.plot(grid, np.polyval(par.coeffs, np.log(grid)), "-", color=line.get_color())
        ax.plot([par.n_opt], [par.loss_opt], "*", color=line.get_color(), markersize=12)
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel("validation NLL")
    ax.set_title("IsoFLOP curves (star: compute-optimal N*)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_power_laws(budgets: np.ndarray, n_opt: np.ndarray, d_opt: np.ndarray, n_law: PowerLaw, d_law: PowerLaw,
                    target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    grid = np.exp(np.linspace(np.log(budgets.min()), np.log(max(target, budgets.max())), 50))
    ax.plot(budgets, n_opt, "o", label=f"N*  (a={n_law.exponent:.2f})")
    ax.plot(grid, n_law(grid), "-")
    ax.plot(budgets, d_opt, "s", label=f"D*  (b={d_law.exponent:.2f})")
    ax.plot(grid, d_law(grid), "--")
    ax.axvline(target, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs C")
    ax.set_ylabel("compute-optimal params / tokens")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_forecast(best: list[dict], points: list[dict], nll_law: PowerLaw, sigmoid: Sigmoid, target: float,
                  path: Path) -> None:
    """Left: compute-optimal runs' proxy NLL vs FLOPs with its power law; right: every run's
    accuracy vs NLL with the sigmoid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    c = np.array([p["flops"] for p in best])
    grid = np.exp(np.linspace(np.log(c.min()), np.log(max(target, c.max())), 50))
    a1.plot(c, [p["proxy_nll"] for p in best], "o")
    a1.plot(grid, nll_law(grid), "-")
    a1.axvline(target, color="grey", lw=0.8, ls=":")
    a1.set_xscale("log")
    a1.set_xlabel("training FLOPs")
    a1.set_ylabel("proxy-task NLL of the correct answer")
    nll = np.array([p["proxy_nll"] for p in points])
    acc = np.array([p["proxy_accuracy"] for p in points])
    ngrid = np.linspace(min(nll.min(), float(nll_law(target))) - 0.2, nll.max() + 0.2, 50)
    a2.plot(nll, acc, "o")
    a2.plot(ngrid, sigmoid(ngrid), "-")
    a2.set_xlabel("proxy-task NLL")
    a2.set_ylabel("proxy-task accuracy")
    fig.suptitle("Two-stage forecast: FLOPs -> NLL -> accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
