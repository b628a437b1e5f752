"""How a stage trains and scores: ``StageContext.checkpoint_dir``, ``train_stage`` and the batched
scorer ``score_sequences``."""

import gc

import pytest
import torch

from factory.core.stage import StageContext
from factory.model.flavors import model_args
from factory.model.llama import SequenceScorer
from factory.train.config import TrainConfig
from factory.train.data import score_sequences
from factory.train.losses import LanguageModeling
from factory.train.stage_training import train_stage


def _quiet(**kw) -> StageContext:
    return StageContext(log=lambda _: None, **kw)


def test_checkpoint_dir_is_resumable_under_the_work_dir(tmp_path):
    path = _quiet(work_dir=tmp_path / "work").checkpoint_dir("long_context/len-000064")
    assert path == tmp_path / "work" / "long_context" / "len-000064" and path.is_dir()
    (path / "marker").write_text("x")
    # A new context on the same work folder (a resumed build) finds the same folder and its files.
    assert (_quiet(work_dir=tmp_path / "work").checkpoint_dir("long_context/len-000064") / "marker").exists()
    for bad in ("../escape", str(tmp_path / "abs")):
        with pytest.raises(ValueError, match="relative"):
            _quiet(work_dir=tmp_path).checkpoint_dir(bad)


def test_checkpoint_dir_without_work_dir_is_a_temporary_folder_of_the_context():
    ctx = _quiet()
    path = ctx.checkpoint_dir("sft")
    assert path.is_dir() and ctx.checkpoint_dir("sft") == path and ctx.checkpoint_dir("run_0") != path
    assert _quiet().checkpoint_dir("sft") != path  # another context, another folder: nothing to resume
    root = path.parent
    del ctx
    gc.collect()
    assert not root.exists()


def test_train_stage_checkpoints_resumes_and_names_curves(tmp_path, packed, build_lm):
    cfg = TrainConfig(steps=3, batch_size=2, lr=1e-3, log_every=1)
    ctx = _quiet(work_dir=tmp_path)
    first = train_stage("sft", cfg, build_lm, LanguageModeling(), packed, ctx)
    assert first.resumed_from is None and any((tmp_path / "sft").iterdir())
    assert [step for step, _ in ctx.history] == [1, 2, 3]
    assert all(set(m) >= {"sft/loss", "sft/lr"} and "sft/step" not in m for _, m in ctx.history)

    again = _quiet(work_dir=tmp_path)
    resumed = train_stage("sft", cfg, build_lm, LanguageModeling(), packed, again, metrics_prefix="")
    assert resumed.resumed_from == 3 and again.history == []  # nothing left to train
    for a, b in zip(first.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    plain = _quiet(work_dir=tmp_path / "other")
    train_stage("base", cfg.model_copy(update={"steps": 1}), build_lm, LanguageModeling(), packed, plain,
                metrics_prefix="", checkpoints=False)
    assert "loss" in plain.history[0][1] and not (tmp_path / "other").exists()


def test_batched_scores_match_unbatched_scores():
    torch.manual_seed(0)
    model = SequenceScorer(model_args("debug", 64, max_seq_len=32), 3).eval()
    gen = torch.Generator().manual_seed(1)
    seqs = [torch.randint(2, 64, (n,), generator=gen).tolist() for n in (5, 17, 1, 9, 30, 12, 3)]
    with torch.no_grad():
        alone = torch.cat([model(torch.tensor([s]), torch.tensor([len(s)])) for s in seqs])
    for batch_size in (1, 3, 32):
        batched = score_sequences(model, seqs, pad_id=0, batch_size=batch_size)
        assert batched.shape == (len(seqs), 3) and batched.dtype == torch.float32
        assert torch.allclose(batched, alone, atol=1e-5)
    assert score_sequences(model, [], pad_id=0).shape == (0,)
