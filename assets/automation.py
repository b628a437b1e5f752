"""How users rebuild: a schedule that re-materializes what is stale, a sensor on the crawl inbox.

Staleness is content-based (``Runner.stale_assets``): an asset is stale when its artifact key —
config, code version, input digests, external files — differs from its current artifact, or
anything upstream is stale. The sensor watches the inbox for new WARC files; ``raw_crawl`` keys
on the files it reads, so a new shard makes it, and everything downstream, stale.
"""


import hashlib
from pathlib import Path

import dagster as dg

from assets.resources import default_profile_name
from factory.config import load_profile
from factory.runner import Runner

rebuild_job = dg.define_asset_job("rebuild", selection=dg.AssetSelection.all(),
                                  description="Materialize the selected assets.")


def _stale_request(profile_name: str, run_key: str | None) -> dg.RunRequest | dg.SkipReason:
    stale = Runner(load_profile(profile_name), log=lambda _: None).stale_assets()
    if not stale:
        return dg.SkipReason("every asset is up to date")
    return dg.RunRequest(run_key=run_key, asset_selection=[dg.AssetKey(a) for a in stale],
                         tags={"factory/stale": ",".join(stale)[:200]})


@dg.schedule(job=rebuild_job, cron_schedule="0 3 * * *", name="rebuild_stale_nightly",
             description="Every night, re-materialize the assets whose content would change.")
def rebuild_stale_nightly(context: dg.ScheduleEvaluationContext):
    return _stale_request(default_profile_name(), run_key=None)


@dg.sensor(job=rebuild_job, minimum_interval_seconds=60, name="new_warc_files",
           description="New WARC files in the crawl inbox rebuild raw_crawl and everything downstream.")
def new_warc_files(context: dg.SensorEvaluationContext):
    profile = load_profile(default_profile_name())
    inbox = Path(profile.section("raw_crawl").get("inbox") or profile.home / "inbox")
    files = sorted(p for p in inbox.glob("*.warc*") if p.is_file()) if inbox.exists() else []
    listing = "\n".join(f"{p.name}:{p.stat().st_size}" for p in files)
    cursor = hashlib.sha256(listing.encode()).hexdigest()
    if not files or cursor == context.cursor:
        context.update_cursor(cursor)
        return dg.SkipReason(f"no new WARC files in {inbox}")
    context.update_cursor(cursor)
    return _stale_request(profile.name, run_key=cursor)
