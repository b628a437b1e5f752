"""The job body: the kind decides the process set-up; the stage named in the request runs with its
validated config, its inputs and a context whose work folder is the request's."""

import os

import pytest
from pydantic import Field

from factory.core.code_version import code_version
from factory.core.stage import StageConfig
from factory.jobs import run_job, run_stage_job
from factory.store import stage_key


class EchoConfig(StageConfig):
    word: str = Field("hi", description="What the stage writes.")


def echo_stage(cfg, inputs, out, ctx, **extra):
    (out / "word.txt").write_text(cfg.word)
    return {"inputs": sorted(inputs), "extra": extra, "work_dir": str(ctx.work_dir),
            "ds_accelerator": os.environ.get("DS_ACCELERATOR")}


def _request(tmp_path, **kw):
    (tmp_path / "out").mkdir(exist_ok=True)
    return {"asset": "echo", "target": "test_jobs:echo_stage", "config_class": "test_jobs:EchoConfig",
            "config": {"word": "yo"}, "extra": {"round": 2}, "inputs": {"up": str(tmp_path)},
            "out": str(tmp_path / "out"), "work_dir": str(tmp_path / "work"), "torch_threads": 1, **kw}


def test_unknown_job_kind_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown job kind 'gpu'"):
        run_job("gpu", _request(tmp_path))


def test_a_job_runs_the_named_stage_with_its_config(tmp_path, monkeypatch):
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    meta = run_job("curate", _request(tmp_path))
    assert (tmp_path / "out" / "word.txt").read_text() == "yo"
    assert meta == {"inputs": ["up"], "extra": {"round": 2}, "work_dir": str(tmp_path / "work"),
                    "ds_accelerator": None}


def test_a_train_job_gets_deepspeeds_cpu_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    assert run_job("train", _request(tmp_path, accelerator="cpu"))["ds_accelerator"] == "cpu"


def test_unknown_config_keys_fail_before_the_stage_runs(tmp_path):
    with pytest.raises(ValueError, match="wrod"):
        run_job("curate", _request(tmp_path, config={"wrod": "x"}))
    assert not (tmp_path / "out" / "word.txt").exists()


def _stage_job_request(tmp_path, monkeypatch, **kw):
    """A stage job's request (store, key config, manifests of inputs) outside any Ray job."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    key_config = {"config": {"word": "yo"}, "extra": {}, "external": ""}
    return {**_request(tmp_path), "extra": {}, "inputs": {}, "key_config": key_config,
            "store": {"root": str(tmp_path / "store"), "local_dir": None}, **kw}


def test_a_stage_job_keys_and_records_the_version_of_its_stages_code(tmp_path, monkeypatch):
    version = code_version("test_jobs:echo_stage", "test_jobs:EchoConfig")
    request = _stage_job_request(tmp_path, monkeypatch, code_version=version)
    manifest = run_stage_job("curate", request, log=lambda _: None)["manifest"]
    assert manifest["code_version"] == version
    assert manifest["key"] == stage_key("echo", request["key_config"], {}, code_version=version)


def test_a_stage_job_refuses_a_driver_that_keyed_other_code(tmp_path, monkeypatch):
    request = _stage_job_request(tmp_path, monkeypatch, code_version="0.1.0+000000000000")
    with pytest.raises(RuntimeError, match="echo code .* but the driver keyed the artifact with 0.1.0"):
        run_stage_job("curate", request, log=lambda _: None)
    assert not (tmp_path / "store").exists()
