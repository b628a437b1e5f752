"""IsoFLOP grid: run length derived from the budget; config validation."""

import pytest

from factory.model.flavors import model_args
from factory.model.llama import Transformer
from factory.scaling.isoflop import ScalingConfig, derived_run


def test_tokens_are_derived_from_the_budget():
    model = Transformer(model_args("debug", 500))
    fpt = model.flops_per_token(32)
    steps, tokens = derived_run(1e10, fpt, batch_size=4, seq_len=32)
    assert tokens == steps * 4 * 32
    assert abs(tokens * fpt - 1e10) <= 0.5 * 4 * 32 * fpt  # within half a step of the budget
    # A bigger model gets fewer tokens for the same compute.
    big = Transformer(model_args("nano", 500)).flops_per_token(32)
    assert derived_run(1e10, big, 4, 32)[1] < tokens


def test_grid_needs_two_budgets_and_two_sizes():
    kw = {"seq_len": 16, "batch_size": 2, "lr": 1e-3, "min_steps": 1, "eval_windows": 1, "target_budget": 1e12,
          "recommend_batch_size": 2, "recommend_seq_len": 16, "proxy_items": 2, "proxy_prompt_len": 4,
          "proxy_answer_len": 1, "proxy_choices": 2}
    with pytest.raises(ValueError, match="two budgets"):
        ScalingConfig(budgets=[1e9], flavors=["debug", "nano"], **kw)
    assert ScalingConfig(budgets=[1e9, 2e9], flavors=["debug", "nano"], **kw).min_lr_ratio == 0.1


def test_grid_run_names_are_valid_mlflow_metric_names():
    import re

    from factory.scaling.isoflop import grid_run_name

    # MLflow's rule for metric names (the server refuses the rest): alphanumerics and _ - . space : /
    assert grid_run_name(2e8, "debug") == "grid/2.0e08/debug"
    for budget in (1e6, 2.5e11, 3e-2):
        assert re.fullmatch(r"[\w\-. :/]+", grid_run_name(budget, "nano") + "/lr")
