"""Language-model runs as a toolkit (recipe: "Scaling Laws", "Determining the data mix",
"Pre-Training Recipe"; docs/architecture.md, "Model and trainer"): one short next-token run
through the stage training call, token-stream mixes, and a map of independent runs over Ray tasks.

Used by the data-mix experiments, the IsoFLOP grid and the pre-training stages; validation losses
live in ``factory.eval.perplexity.val_losses``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from factory.core.resources import Placement, current, use
from factory.core.stage import StageContext
from factory.model.llama import ModelArgs, Transformer
from factory.train.config import TrainConfig
from factory.train.data import MixedTokens
from factory.train.losses import LanguageModeling
from factory.train.schedules import samples_before
from factory.train.stage_training import train_stage
from factory.train.token_shards import SPLITS, load_stream, packed_sources
from factory.train.trainer import TrainResult, flops_per_token


def train_lm(
    cfg: TrainConfig,
    args: ModelArgs,
    data,
    *,
    init_state: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """One short next-token-prediction run on a ``Transformer`` of shape ``args``, through
    ``train_stage`` without checkpoints: the many runs of the mix experiments and the IsoFLOP grid
    (inside Ray tasks, where no stage context exists) and the annealing valuation runs."""
    return train_stage("lm", cfg, lambda: Transformer(args), LanguageModeling(), data, StageContext(log=log),
                       init_state=init_state, checkpoints=False)


def map_runs(fn: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]:
    """``[fn(item, **shared) for item in items]``: as plain Ray tasks when Ray is initialized (each
    run is single-worker; never a Ray Train job per run), else sequentially in this process. Each
    task asks for the stage's worker resources and trains on the stage's device (its placement)."""
    try:
        import ray
    except ImportError:  # Ray is a pinned dependency; without it the grid simply runs in-process.
        ray = None
    if ray is not None and ray.is_initialized():
        placement = current()
        remote = ray.remote(_placed_run).options(**placement.worker.ray_options())
        refs = {k: ray.put(v) for k, v in shared.items()}
        return ray.get([remote.remote(placement, fn, item, **refs) for item in items])
    return [fn(item, **shared) for item in items]


def _placed_run(placement: Placement, fn: Callable[..., Any], item: Any, **shared: Any) -> Any:
    """One grid run in its Ray task, under its stage's placement."""
    with use(placement):
        return fn(item, **shared)


def load_streams(mix_dir: Path, names: Sequence[str], split: str) -> dict[str, np.ndarray]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    return {n: load_stream(mix_dir, n, split) for n in names}


def mix_data(train_streams: Mapping[str, np.ndarray], weights: Mapping[str, float], seq_len: int, eot_id: int,
             seed: int, extra_sources: Mapping[str, Any] | None = None) -> MixedTokens:
    """``MixedTokens`` over the streams (and extra window sources such as NIAH examples)."""
    sources: dict[str, Any] = dict(packed_sources(train_streams, seq_len, eot_id, seed))
    sources.update(extra_sources or {})
    missing = [n for n, w in weights.items() if w > 0 and n not in sources]
    if missing:
        raise ValueError(f"mix names streams {missing} that have no training window of {seq_len} tokens")
    return MixedTokens(sources, weights, seed=seed)


def normalize(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(w for w in weights.values() if w > 0)
    if total <= 0:
        raise ValueError(f"mix weights {dict(weights)} have no positive entry")
    return {k: w / total for k, w in weights.items() if w > 0}


def shifted_mix(base: Mapping[str, float], domain: str, share: float) -> dict[str, float]:
    """``domain`` gets ``share`` of the mix; the other domains split the rest in their base ratio."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"domain share must be in (0, 1], got {share}")
    rest = {k: w for k, w in base.items() if k != domain and w > 0}
    out = {k: (1.0 - share) * w / sum(rest.values()) for k, w in rest.items()} if rest else {}
    out[domain] = share
    return normalize(out)


def run_summary(result: TrainResult, cfg: TrainConfig, seq_len: int) -> dict[str, Any]:
    """Params, FLOPs per token and tokens of a whole run (resumed or not) for stage metadata, and how
    it weathered faults: worker-group restarts, steps thrown away by them, goodput (time in steps
    that count / wall time)."""
    model = result.model
    tokens = samples_before(cfg.steps, cfg.batch_size, cfg.schedule.batch_ramp) * seq_len
    fpt = flops_per_token(model, seq_len)
    return {
        "params": model.num_params(),
        "non_embedding_params": model.num_params(exclude_embeddings=True),
        "flops_per_token": fpt,
        "train_flops": fpt * tokens,
        "tokens": tokens,
        "steps": cfg.steps,
        "resumed_from_step": result.resumed_from,
        "wall_s": round(result.wall_s, 2),
        "final_train_loss": round(result.final.get("loss", float("nan")), 5),
        "tokens_per_s": round(result.final.get("tokens_per_s", 0.0), 1),
        "restarts": result.restarts,
        "lost_steps": result.lost_steps,
        "goodput": round(result.final.get("goodput", 0.0), 4),
    }
