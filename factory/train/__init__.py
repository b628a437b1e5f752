"""The one trainer and its components (schedules, objectives, batch sources, checkpoints, engines) and the
pre-training stages."""
