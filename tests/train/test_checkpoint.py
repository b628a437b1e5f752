"""Checkpoints: manifest digests, corrupt ones skipped, keep-last-K, asynchronous writes."""

import torch

from factory.train.checkpoint import (
    AsyncCheckpointer,
    is_intact,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)


def _state(x: float) -> dict:
    return {"model": {"w": torch.full((3,), x)}, "meta": {"step": int(x)}}


def test_corrupt_checkpoint_is_skipped(tmp_path):
    save_checkpoint(tmp_path, 1, _state(1.0), keep_last=3)
    newest = save_checkpoint(tmp_path, 2, _state(2.0), keep_last=3)
    assert latest_checkpoint(tmp_path) == newest
    torch.save({"w": torch.zeros(3)}, newest / "model.pt")  # bytes no longer match the manifest
    assert not is_intact(newest)
    older = latest_checkpoint(tmp_path)
    assert older is not None and older.name == "step-00000001"
    assert load_checkpoint(older)["model"]["w"].tolist() == [1.0, 1.0, 1.0]
    (older / "manifest.json").write_text("{not json")
    assert latest_checkpoint(tmp_path) is None


def test_keep_last_and_half_written_folders_are_invisible(tmp_path):
    for step in range(1, 5):
        save_checkpoint(tmp_path, step, _state(float(step)), keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000003", "step-00000004"]
    (tmp_path / ".tmp-00000005").mkdir()  # a writer that died mid-write
    assert latest_checkpoint(tmp_path).name == "step-00000004"


def test_async_checkpointer_writes_a_snapshot_taken_at_save_time(tmp_path):
    writer = AsyncCheckpointer()
    weights = torch.ones(1000)
    writer.save(tmp_path, 7, {"model": {"w": weights}, "meta": {"step": 7}}, keep_last=2)
    weights.add_(1.0)  # training goes on while the checkpoint is written
    writer.wait()
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["model"]["w"].eq(1.0).all() and state["meta"]["step"] == 7
