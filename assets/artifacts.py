"""Which artifact an asset check reads: the one the run's materialization produced.

``assets/graph.py`` reports each materialization's ``artifact_key``; a check looks up the
materialization of its asset in its own run (the one it follows) or, in a run that only checks,
the asset's latest materialization, and reads that key's manifest from the store. Never the
store's latest ref: another run may have moved it since (a newer artifact of other inputs).
"""


import dagster as dg

from factory.store import ArtifactStore, Manifest


def materialized_key(instance: dg.DagsterInstance, run_id: str, asset: str) -> str:
    """The ``artifact_key`` of ``asset``'s materialization in run ``run_id``, else of its latest one."""
    key = dg.AssetKey(asset)
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    mats = [e.asset_materialization for e in events
            if e.asset_materialization is not None and e.asset_materialization.asset_key == key]
    if not mats:
        latest = instance.get_latest_materialization_event(key)
        mats = [latest.asset_materialization] if latest is not None and latest.asset_materialization else []
    if not mats:
        raise FileNotFoundError(f"asset {asset!r} has no materialization to check")
    value = mats[-1].metadata.get("artifact_key")
    if value is None:
        raise FileNotFoundError(f"the materialization of {asset!r} reports no artifact_key")
    return value.value


def checked_manifest(context: dg.AssetCheckExecutionContext, store: ArtifactStore, asset: str) -> Manifest:
    """The manifest of the artifact the checked materialization produced."""
    return store.load(asset, materialized_key(context.instance, context.run.run_id, asset))
