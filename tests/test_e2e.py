"""End to end: materialize the whole graph with profile ``smoke`` through Dagster and audit the result."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from factory.config import load_profile
from factory.stages import stage_specs
from factory.store import ArtifactStore

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def smoke_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("factory-home")
    env = {**os.environ, "FACTORY_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "FACTORY_PROFILE": "smoke"}
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-m", "factory.cli", "run", "--profile", "smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1500)
    (home / "run.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return home, env, proc.stdout


@pytest.fixture(scope="module")
def store(smoke_home):
    home, env, _ = smoke_home
    return ArtifactStore(home / "artifacts")


def test_every_asset_materialized(smoke_home, store):
    _, _, stdout = smoke_home
    assets = [s.asset for s in stage_specs(load_profile("smoke"))]
    assert len(assets) == 26
    for asset in assets:
        manifest = store.latest(asset)
        assert manifest.files, f"{asset} produced no files"
        assert store.verify(manifest) == []
    assert "Release:" in stdout and "Dagster UI:" in stdout and "MLflow UI:" in stdout
    progress = [re.match(r"\[(\d+)/26\] (\w+): ", line) for line in stdout.splitlines()]
    progress = [m.groups() for m in progress if m]  # `factory run`'s line per finished asset
    assert [int(k) for k, _ in progress] == list(range(1, 27)) and {a for _, a in progress} == set(assets)


def test_every_asset_has_an_mlflow_run_with_input_digests(smoke_home, store):
    home, _, _ = smoke_home
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("factory/smoke")
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    by_asset = {r.data.tags["factory.asset"]: r for r in runs}
    for spec in stage_specs(load_profile("smoke")):
        run = by_asset[spec.asset]
        digests = {i.dataset.name: i.dataset.digest for i in run.inputs.dataset_inputs}
        for name in spec.inputs:
            assert digests[name] == store.latest(name).digest[:36]
    assert client.get_model_version_by_alias("factory-chat_model", "current").source.startswith("file://")


def test_lineage_walks_back_to_raw_crawl(smoke_home):
    _, env, _ = smoke_home
    proc = subprocess.run([sys.executable, "-m", "factory.cli", "lineage", "quantized_release"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "raw_crawl" in proc.stdout and "OK:" in proc.stdout


def test_release_loads_with_transformers_and_uses_llama3_chat_layout(store):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_dir = store.path_of(store.latest("quantized_release")) / "hf"
    tokenizer = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, local_files_only=True)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is 12+7?"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 12+7?<|eot_id|>")
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids.shape[1]


def test_eval_report_has_every_section(store):
    report = json.loads((store.path_of(store.latest("eval_report")) / "report.json").read_text())
    for section in ("perplexity", "experts", "niah", "tasks", "sft_data", "guards", "quantization"):
        assert section in report, f"eval report lacks {section}"
    assert list(report["tasks"]) == ["sft_round_1", "dpo_round_1", "sft_round_2", "dpo_round_2", "chat_model"]
    assert {"llama_guard", "llama_guard_int8", "prompt_guard"} <= set(report["guards"])
    assert {"bf16", "fp8"} <= set(report["quantization"])


def test_a_no_op_rerun_reuses_everything_and_opens_no_mlflow_run(smoke_home):
    import mlflow

    home, env, _ = smoke_home
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("factory/smoke").experiment_id
    runs_before = len(client.search_runs([experiment], max_results=1000))
    proc = subprocess.run([sys.executable, "-m", "factory.cli", "run", "--profile", "smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    progress = [line for line in proc.stdout.splitlines() if re.match(r"\[\d+/26\] \w+: ", line)]
    assert len(progress) == 26 and all(": reused" in line for line in progress), progress
    assert len(client.search_runs([experiment], max_results=1000)) == runs_before  # a reuse opens no run
