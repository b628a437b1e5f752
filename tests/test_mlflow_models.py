"""MLflow lineage beyond the audit: checkpoints registered from run artifacts and loaded back by
``models:/factory-<asset>@current`` in a fresh process, the chat bundle as a transformers-flavor
model, and runs that end FAILED or KILLED when their build does not finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from factory.lineage import ALIAS, CHAT_MODEL, BuildInterrupted, Tracker
from factory.model.checkpoint_io import save_model
from factory.model.llama import ModelArgs, Transformer
from factory.store import ArtifactStore

ROOT = Path(__file__).resolve().parent.parent


def _tiny_args(vocab: int = 64) -> ModelArgs:
    return ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=vocab, ffn_hidden_dim=64, max_seq_len=64)


def _checkpoint(store: ArtifactStore, asset: str, seed: int = 0):
    def produce(out, work):
        torch.manual_seed(seed)
        save_model(Transformer(_tiny_args()), out)
        return {"final_loss": 1.5}

    manifest, _ = store.build(asset, {"seed": seed}, {}, produce, code_version="v1")
    return manifest


def _fresh_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter with only ``env`` (plus what finding Python and the repo needs)."""
    base = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}
    full = {**base, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **env}
    return subprocess.run([sys.executable, "-c", code], env=full, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


LOAD_CHECKPOINT = """
import sys
from pathlib import Path
import mlflow, torch
from factory.model.checkpoint_io import load_model
model = mlflow.models.Model.load("models:/factory-{asset}@current")
assert model.flavors["factory"]["digest"] == "{digest}", model.flavors
folder = Path(mlflow.artifacts.download_artifacts("models:/factory-{asset}@current"))
lm = load_model(folder)
logits = lm(torch.tensor([[1, 2, 3]]))
print("LOADED", folder.name, tuple(logits.shape))
"""


def test_checkpoint_is_registered_from_run_artifacts_and_loads_in_a_fresh_process(tmp_path):
    store = ArtifactStore(tmp_path / "artifacts")
    manifest = _checkpoint(store, "base_checkpoint")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "factory/test")
    with tracker.run("base_checkpoint", {}) as run_id:
        version = tracker.register_checkpoint("base_checkpoint", manifest, store, run_id)

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    mv = client.get_model_version_by_alias("factory-base_checkpoint", ALIAS)
    assert mv.version == version and mv.run_id == run_id and mv.tags["digest"] == manifest.digest
    # The run's own artifacts (beside the MLflow store, not a folder of the artifact store).
    assert mv.source.startswith("file://") and mv.source.endswith(f"{run_id}/artifacts/checkpoint")
    assert str(tmp_path / "mlartifacts") in mv.source
    assert {f.path for f in client.list_artifacts(run_id, "checkpoint")} >= {
        "checkpoint/MLmodel", "checkpoint/model.safetensors", "checkpoint/model.json"}

    proc = _fresh_python(LOAD_CHECKPOINT.format(asset="base_checkpoint", digest=manifest.digest),
                         {"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED" in proc.stdout and "(1, 3, 64)" in proc.stdout

    # A reused artifact (same digest) in a later run is not logged again; the alias stays on its version.
    with tracker.run("base_checkpoint", {}) as again:
        assert tracker.register_checkpoint("base_checkpoint", manifest, store, again) == version
    assert client.list_artifacts(again) == []
    # A new build gets a new version and the alias.
    other = _checkpoint(store, "base_checkpoint", seed=1)
    with tracker.run("base_checkpoint", {}) as third:
        new = tracker.register_checkpoint("base_checkpoint", other, store, third)
    assert new != version and client.get_model_version_by_alias("factory-base_checkpoint", ALIAS).version == new


def test_failed_and_interrupted_builds_end_their_runs(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "factory/test")
    client = mlflow.MlflowClient(tracking_uri=uri)
    ids = {}
    with pytest.raises(RuntimeError), tracker.run("a", {}) as ids["error"]:
        raise RuntimeError("stage failed")
    with pytest.raises(KeyboardInterrupt), tracker.run("b", {}) as ids["interrupt"]:
        raise KeyboardInterrupt
    # The handler is installed only where nobody else handles SIGTERM; an in-process Ray left by an
    # earlier test would have its own, so this part runs with the default disposition.
    earlier = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with pytest.raises(BuildInterrupted), tracker.run("c", {}) as ids["sigterm"]:
            os.kill(os.getpid(), signal.SIGTERM)  # what Ray, Dagster or a shell send to stop a build
            time.sleep(30)  # interrupted by the handler
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # installed only while a run is open
    finally:
        signal.signal(signal.SIGTERM, earlier)
    with tracker.run("d", {}) as ids["ok"]:
        pass
    status = {k: client.get_run(v).info.status for k, v in ids.items()}
    assert status == {"error": "FAILED", "interrupt": "KILLED", "sigterm": "KILLED", "ok": "FINISHED"}
    assert client.get_run(ids["error"]).data.tags["factory.error"] == "RuntimeError: stage failed"
    assert mlflow.active_run() is None


OPEN_AND_HANG = """
import sys, time
from factory.lineage import Tracker
with Tracker(sys.argv[1], "factory/test").run("base_checkpoint", {}) as run_id:
    print(run_id, flush=True)
    time.sleep(600)
"""


def test_a_killed_builds_run_is_ended_failed_by_the_next_tracker(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.Popen([sys.executable, "-c", OPEN_AND_HANG, uri], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    run_id = proc.stdout.readline().strip()
    client = mlflow.MlflowClient(tracking_uri=uri)
    assert client.get_run(run_id).info.status == "RUNNING"
    Tracker(uri, "factory/test")  # the build is alive: its run is left alone
    assert client.get_run(run_id).info.status == "RUNNING"
    proc.kill()  # SIGKILL: no handler runs, the run stays RUNNING ...
    proc.wait()
    assert client.get_run(run_id).info.status == "RUNNING"
    tracker = Tracker(uri, "factory/test")  # ... until the next tracker on this host
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and f"process {proc.pid}" in run.data.tags["factory.error"]
    assert tracker.fail_orphaned_runs() == []


GENERATE = """
import mlflow
pipe = mlflow.transformers.load_model("models:/factory-chat@current")
out = pipe("hello world", max_new_tokens=5, do_sample=False)
print("GENERATED", type(pipe).__name__, repr(out[0]["generated_text"]))
"""


@pytest.mark.slow  # transformers' model classes, logging and loading a pipeline (~1 min on a busy 2-core host)
def test_chat_bundle_is_a_transformers_model_that_generates_in_a_fresh_process(tmp_path):
    from tokenizers import Tokenizer

    from factory.data.tokenizer import save_tokenizer, train_bpe
    from factory.model.hf import export_hf

    tok = train_bpe(["hello world, what is two plus two?", "the answer is four."] * 20, vocab_size=300,
                    num_special_tokens=16)
    save_tokenizer(tok, tmp_path / "tokenizer")
    vocab = Tokenizer.from_file(str(tmp_path / "tokenizer" / "tokenizer.json")).get_vocab_size()

    def produce(out, work):
        torch.manual_seed(0)
        export_hf(Transformer(_tiny_args(vocab)), out / "hf", tokenizer_dir=tmp_path / "tokenizer")
        return {}

    store = ArtifactStore(tmp_path / "artifacts")
    manifest, _ = store.build("quantized_release", {}, {}, produce, code_version="v1")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "factory/test")
    with tracker.run("quantized_release", {}) as run_id:
        tracker.register_checkpoint("quantized_release", manifest, store, run_id)

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    chat = client.get_model_version_by_alias(CHAT_MODEL, ALIAS)
    assert chat.run_id == run_id and chat.tags["digest"] == manifest.digest
    assert client.get_model_version_by_alias("factory-quantized_release", ALIAS).tags["digest"] == manifest.digest
    proc = _fresh_python(GENERATE, {"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GENERATED TextGenerationPipeline 'hello world" in proc.stdout
