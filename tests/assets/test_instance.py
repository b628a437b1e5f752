"""The Dagster instance the factory writes: a run queue and one pool that the training stages share."""

import dagster as dg

from assets.instance import TRAINING_POOL, ensure_dagster_yaml
from factory.config import load_profile
from factory.stages import stage_specs


def test_training_assets_and_only_they_carry_the_training_pool():
    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    pools = {key.path[0]: graph.get(key).pools for key in graph.get_all_asset_keys()}
    training = {s.asset for s in stage_specs(load_profile("demo")) if s.ray_job == "train"}
    assert {"base_checkpoint", "reward_model", "dpo_round_2", "llama_guard"} <= training
    assert "raw_crawl" not in training and "filtered_corpus" not in training
    assert {a for a, p in pools.items() if p == {TRAINING_POOL}} == training
    assert all(not p for a, p in pools.items() if a not in training)


def test_written_dagster_yaml_queues_runs_and_limits_the_pool(tmp_path):
    path = ensure_dagster_yaml(tmp_path / "dagster")
    with dg.DagsterInstance.from_config(str(path.parent)) as instance:
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 4
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.pool_config.pool_granularity.value == "run"

    path.write_text("telemetry:\n  enabled: false\n")  # a user's own file stays as it is
    assert ensure_dagster_yaml(path.parent).read_text() == "telemetry:\n  enabled: false\n"
