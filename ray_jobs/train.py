"""Job for stages that train or run a model (DeepSpeed's environment is prepared by ``run_job``)."""

from ray_jobs.entry import cli

if __name__ == "__main__":
    cli("train")
