"""The ``factory`` console script: every verb listed, profile validation from the shell, ``factory run``."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from factory.cli import VERBS, main
from factory.config import PROFILES_DIR
from factory.store import ArtifactStore

ROOT = Path(__file__).resolve().parent.parent


def test_help_lists_every_verb():
    proc = subprocess.run([sys.executable, "-m", "factory.cli", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.split("verbs:")[1].splitlines() if line.strip()}
    assert listed == set(VERBS) == {"run", "validate", "lineage", "bench", "cluster"}


def test_bench_json_keeps_stdout_to_the_json_document(monkeypatch, capfd):
    class Noisy:
        """A benchmark whose run writes to stdout from Python and from a child process, as Ray's log
        forwarding and the trainers' progress lines do."""

        @staticmethod
        def add_arguments(parser):
            pass

        @staticmethod
        def run(args):
            print("a progress line")
            subprocess.run(["echo", "a worker's log line"], check=True)
            return [{"name": "factory", "tokens_per_s": 1.0}]

    monkeypatch.setattr("factory.cli.benchmarks", lambda: {"noisy": Noisy})
    assert main(["bench", "noisy", "--json"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out) == {"results": [{"name": "factory", "tokens_per_s": 1.0}]}
    assert "a progress line" in err and "a worker's log line" in err


def test_unknown_verb_exits_2():
    with pytest.raises(SystemExit) as exit_info:
        main(["materialise"])
    assert exit_info.value.code == 2


def _variant(tmp_path: Path, name: str, old: str, new: str) -> str:
    text = (PROFILES_DIR / "smoke.yaml").read_text()
    assert old in text
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace(old, new, 1))
    return str(path)


def test_validate_accepts_a_shipped_profile(capsys):
    assert main(["validate", "--profile", "smoke"]) == 0
    assert capsys.readouterr().out.startswith("smoke: OK (26 stages")


def test_validate_names_a_misspelt_section_and_an_unknown_key(tmp_path, capsys):
    typo = _variant(tmp_path, "typo", "\ndeduped_docs:", "\ndedupd_docs:")
    key = _variant(tmp_path, "key", "train: {steps: 30, batch_size: 8,", "train: {steps: 30, batch_size: 8, warmup: 3,")
    assert main(["validate", "--profile", typo, "--profile", key]) == 1
    out = capsys.readouterr().out
    assert f"{typo}: 1 error(s)\n  unknown section 'dedupd_docs' (did you mean 'deduped_docs'?)" in out
    assert f"{key}: 1 error(s)\n  unknown key 'base_checkpoint.train.warmup'" in out


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACTORY_HOME": str(home), "PYTHONPATH": str(ROOT)}
    for name in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "DAGSTER_HOME", "FACTORY_PROFILE"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "factory.cli", "run", *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow  # a fresh interpreter loads the stage configs (torch): ~10 s
def test_run_refuses_an_unknown_asset_before_anything_runs(tmp_path):
    proc = _run(["--profile", "smoke", "raw_crawl", "extracted_doc"], tmp_path)
    assert proc.returncode == 2
    assert "profile 'smoke': nothing run:\n  unknown asset 'extracted_doc'; known: raw_crawl, extracted_docs," \
        in proc.stderr
    assert not any(tmp_path.iterdir())  # no Dagster instance, store or MLflow database


@pytest.mark.slow  # Dagster + the embedded Ray in a fresh process: ~1 min
def test_run_materializes_a_selection_through_dagster(tmp_path):
    proc = _run(["--profile", "smoke", "raw_crawl"], tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "1 selected, 1 to build; ~0s (+1 untimed)"
    progress = [line for line in lines if re.match(r"\[\d+/\d+\] ", line)]
    assert [line.split(" in ")[0] for line in progress] == ["[1/1] raw_crawl: built"]
    timings = json.loads((tmp_path / "timings" / "smoke.json").read_text())
    assert set(timings) == {"raw_crawl"} and timings["raw_crawl"]["built"] > 0
    store = ArtifactStore(tmp_path / "artifacts")
    assert store.verify(store.latest("raw_crawl")) == []
    assert any((tmp_path / "dagster").iterdir())  # the run is in the home's Dagster instance
