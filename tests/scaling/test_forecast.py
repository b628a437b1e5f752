"""Scaling-law fits: parabola vertex, power laws, the accuracy sigmoid, the cloze proxy task."""

import numpy as np
import pytest
import torch

from factory.model.flavors import model_args
from factory.model.llama import Transformer
from factory.scaling import forecast as F


def test_parabola_recovers_a_known_optimum():
    sizes = np.array([1e5, 3e5, 1e6, 3e6, 1e7])
    losses = 2.0 + 0.3 * (np.log(sizes) - np.log(8e5)) ** 2
    fit = F.fit_parabola(sizes, losses)
    assert fit.fitted
    assert fit.n_opt == pytest.approx(8e5, rel=1e-6)
    assert fit.loss_opt == pytest.approx(2.0, abs=1e-9)


def test_parabola_falls_back_to_the_best_point_without_a_minimum():
    fit = F.fit_parabola(np.array([1e5, 1e6]), np.array([3.0, 2.5]))
    assert not fit.fitted and fit.n_opt == 1e6 and fit.loss_opt == 2.5
    concave = F.fit_parabola(np.array([1e5, 1e6, 1e7]), np.array([2.0, 3.0, 2.2]))
    assert not concave.fitted and concave.n_opt == 1e5


def test_power_law_fit():
    c = np.array([1e15, 1e16, 1e17, 1e18])
    law = F.fit_power_law(c, 0.3 * c**0.53)
    assert law.exponent == pytest.approx(0.53) and law.coef == pytest.approx(0.3) and law.r2 == pytest.approx(1.0)
    assert law(1e19) == pytest.approx(0.3 * 1e19**0.53)
    with pytest.raises(ValueError):
        F.fit_power_law(np.array([1.0, 1.0]), np.array([2.0, 3.0]))


def test_sigmoid_fit_recovers_its_parameters():
    nll = np.linspace(0.5, 3.0, 12)
    truth = F.Sigmoid(0.25, 3.0, 1.5, 0.0)
    fit = F.fit_sigmoid(nll, truth(nll), floor=0.25)
    assert fit.k == pytest.approx(3.0, rel=1e-3) and fit.mid == pytest.approx(1.5, rel=1e-3)
    assert fit.r2 == pytest.approx(1.0, abs=1e-4)


def test_cloze_items_hold_the_true_continuation_first():
    tokens = np.arange(1000) % 97
    task = F.make_cloze(tokens, n=5, prompt_len=6, answer_len=3, n_choices=4, seed=0)
    assert task.prompts.shape == (5, 6) and task.choices.shape == (5, 4, 3) and task.chance == 0.25
    for p, ch in zip(task.prompts, task.choices, strict=True):
        assert ch[0].tolist() == [(p[-1] + k) % 97 for k in (1, 2, 3)]
        assert all(not np.array_equal(ch[0], d) for d in ch[1:])
    torch.manual_seed(0)
    nll, acc = F.score_cloze(Transformer(model_args("debug", 97)), task)
    assert nll > 0 and 0.0 <= acc <= 1.0
