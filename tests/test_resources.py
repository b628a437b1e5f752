"""Resources and device from the profile (factory/core/resources.py): runtime.resources resolves per
stage and reaches the Ray Job's entrypoint, Ray Train's workers and the grid runs; the device and
the process-group backend follow runtime.accelerator; none of it moves an artifact key."""

import pytest
import torch
import yaml

from factory.config import PROFILES_DIR, Profile, load_profile
from factory.core.resources import DriverResources, Placement, WorkerResources, current, use
from factory.jobs import run_job
from factory.raycluster import cluster_runtime_env, job_for, pinned_requirements
from factory.runner import Runner
from factory.stages import stage_specs
from factory.train.config import ParallelismConfig
from factory.train.engines import worker_group
from factory.train.lm_runs import _placed_run


@pytest.fixture(autouse=True)
def _no_cluster_env(monkeypatch):
    for key in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)


def _profile(runtime: dict) -> Profile:
    """A profile with only a runtime: every stage on its defaults."""
    return Profile("test", {"runtime": runtime})


def test_a_stage_takes_the_default_parts_its_own_entry_does_not_name():
    runtime = _profile({"resources": {
        "default": {"driver": {"resources": {"big_disk": 1}}, "worker": {"num_cpus": 4}},
        "base_checkpoint": {"driver": {"num_cpus": 2}},
        "sft": {"worker": {"resources": {"node_worker": 0.5}}},
    }}).runtime
    base = runtime.stage_resources("base_checkpoint")
    assert base.driver == DriverResources(num_cpus=2)  # its own driver, replacing the default's as a whole
    assert base.worker == WorkerResources(num_cpus=4)  # the default's worker
    sft = runtime.stage_resources("sft")
    assert sft.driver.resources == {"big_disk": 1} and sft.driver.num_cpus == 0
    assert sft.worker == WorkerResources(num_cpus=1, resources={"node_worker": 0.5})
    assert runtime.stage_resources("tokenizer") == runtime.stage_resources("default")


def test_without_resources_a_driver_reserves_nothing_and_a_worker_one_cpu():
    resources = _profile({}).runtime.stage_resources("data_mix")
    assert resources.driver.ray_options() == {"num_cpus": 0, "num_gpus": 0, "resources": {}}
    assert resources.worker.bundle() == {"CPU": 1}


def test_resources_for_no_stage_fail_loudly():
    with pytest.raises(ValueError, match="runtime.resources names no stage: base_chekpoint"):
        stage_specs(_profile({"resources": {"base_chekpoint": {"driver": {"num_cpus": 1}}}}))
    assert stage_specs(_profile({"resources": {"sft": {}, "dpo": {}, "default": {}}}))  # round stages by section


def test_gpus_follow_the_accelerator():
    with pytest.raises(ValueError, match="with accelerator cuda every worker trains on a GPU"):
        _profile({"accelerator": "cuda"})
    with pytest.raises(ValueError, match="runtime.resources.sft: with accelerator cuda"):
        _profile({"accelerator": "cuda", "resources": {"default": {"worker": {"num_gpus": 1}},
                                                       "sft": {"worker": {"num_cpus": 2}}}})
    with pytest.raises(ValueError, match="GPUs asked for while accelerator is cpu"):
        _profile({"resources": {"base_checkpoint": {"driver": {"num_gpus": 1}}}})


def test_resources_do_not_change_an_artifact_key(tmp_path):
    home = {"home": str(tmp_path)}
    plain, placed = _profile(home), _profile({**home, "resources": {"tokenizer": {"driver": {"num_cpus": 3}}}})
    spec = {s.asset: s for s in stage_specs(plain)}["tokenizer"]
    assert Runner(plain).key_config(spec) == Runner(placed).key_config(spec)


def test_the_cluster_profiles_jobs_ask_for_the_stages_driver_resources(tmp_path):
    data = yaml.safe_load((PROFILES_DIR / "cluster.yaml").read_text())
    data["runtime"].update(home=str(tmp_path), artifact_root=str(tmp_path / "artifacts"))  # not its shared mount
    profile = Profile("cluster", data)
    runner = Runner(profile)
    for asset, gpus, cpus in (("base_checkpoint", 1, 8), ("sft_round_1", 0, 0), ("tokenizer", 0, 0)):
        spec = runner.specs[asset]
        request = runner.request(spec, "k", runner.key_config(spec), {}, "")
        params = job_for(profile, spec.ray_job, request).submit_params()
        assert (params["entrypoint_num_gpus"], params["entrypoint_num_cpus"]) == (gpus, cpus), asset
        assert params["entrypoint_resources"] == {}
        assert request["resources"]["worker"] == {"num_cpus": 8, "num_gpus": 1, "resources": {}}


def test_the_local_clusters_raw_crawl_job_is_pinned_to_the_worker_node(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    profile = load_profile("cluster-local")
    runner = Runner(profile)
    jobs = {}
    for asset in ("raw_crawl", "extracted_docs"):
        spec = runner.specs[asset]
        jobs[asset] = job_for(profile, spec.ray_job, runner.request(spec, "k", runner.key_config(spec), {}, ""))
    assert jobs["raw_crawl"].submit_params()["entrypoint_resources"] == {"node_worker": 1}
    assert jobs["extracted_docs"].submit_params()["entrypoint_resources"] == {}
    assert jobs["raw_crawl"].entrypoint.startswith("python -m ray_jobs.curate ")  # the nodes' python


def test_ray_train_workers_ask_for_the_worker_resources_on_the_accelerators_backend():
    par = ParallelismConfig(backend="ddp", num_workers=4)
    gpu = Placement("cuda", WorkerResources(num_cpus=8, num_gpus=1, resources={"accelerator_type:H100": 0.01}))
    scaling, torch_config = worker_group(par, gpu)
    assert (scaling.num_workers, scaling.use_gpu, torch_config.backend) == (4, True, "nccl")
    assert scaling.resources_per_worker == {"CPU": 8, "GPU": 1, "accelerator_type:H100": 0.01}
    scaling, torch_config = worker_group(par, Placement())
    assert (scaling.use_gpu, scaling.resources_per_worker, torch_config.backend) == (False, {"CPU": 1}, "gloo")


def test_a_cuda_placement_without_a_visible_gpu_is_a_clear_error(monkeypatch):
    assert Placement().device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"needs runtime.resources.<stage>.driver.num_gpus"):
        Placement("cuda", WorkerResources(num_gpus=1)).device()


def placed_stage(cfg, inputs, out, ctx, **extra):
    placement = current()
    return {"accelerator": placement.accelerator, "worker": placement.worker.bundle()}


def test_a_job_runs_its_stage_under_the_requests_placement(tmp_path):
    (tmp_path / "out").mkdir()
    request = {"asset": "placed", "target": "test_resources:placed_stage", "config_class": "test_jobs:EchoConfig",
               "config": {}, "inputs": {}, "out": str(tmp_path / "out"), "torch_threads": 1, "accelerator": "cpu",
               "resources": {"worker": {"num_cpus": 3, "resources": {"node_worker": 1}}}}
    assert run_job("curate", request) == {"accelerator": "cpu", "worker": {"CPU": 3, "node_worker": 1}}
    assert current() == Placement()  # only for the stage's duration


def test_a_grid_run_trains_under_its_stages_placement():
    placement = Placement("cpu", WorkerResources(num_cpus=2))
    with use(Placement("cpu", WorkerResources(num_cpus=5))):  # what the task's process had before
        assert _placed_run(placement, lambda item, k: (item, k, current().worker.num_cpus), 7, k="x") == (7, "x", 2)
        assert current().worker.num_cpus == 5


def test_job_env_picks_the_clusters_runtime_env(tmp_path):
    pins = pinned_requirements()
    assert "torch==2.13.0" in pins and any(p.startswith("s3fs==") for p in pins)
    env = {"A": "1"}
    working_dir = cluster_runtime_env(_profile({}), env)
    assert set(working_dir) == {"working_dir", "excludes", "env_vars"}
    pip = cluster_runtime_env(_profile({"job_env": "pip"}), env)
    assert pip["working_dir"] == working_dir["working_dir"] and pip["pip"]["packages"] == pins
    image = cluster_runtime_env(_profile({"job_env": "image", "job_image": "registry/factory:1"}), env)
    assert image == {"image_uri": "registry/factory:1", "env_vars": env}
    with pytest.raises(ValueError, match="job_image"):
        _profile({"job_env": "image"})
