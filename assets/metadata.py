"""What a materialization shows on its Dagster asset page (docs/architecture.md, "Observability").

``dagster_metadata`` turns a runner ``Outcome`` into the materialization's metadata:

- the artifact: ``path``, ``digest``, ``artifact_key``, ``reused``, ``mlflow_run_id``, ``seconds``;
- the stage's own metadata: scalars as they are, tables (a list of rows, or a mapping of names to
  rows: DPO runs, mix experiments, long-context increments, step summaries) as markdown tables,
  other nested values as JSON;
- ``plot_<name>``: every plot the stage drew (the PNGs at the top of its artifact, as MLflow logs
  them), embedded as a markdown image (``![name](data:image/png;base64,...)``) at most
  ``PLOT_MAX_PX`` pixels wide or tall, in 256 colours and at most ``PLOT_MAX_BYTES`` bytes;
- ``loss_curve``: the training loss of every run the stage trained, one line per run, drawn from
  the per-step values in the stage's MLflow run (``train/loss`` or ``train/<run>/loss``: the stage
  training call and the grid runs log them there, ``factory.train.stage_training``);
- ``mlflow_run``: the run's page in the MLflow UI (a tracking server's own, else ``make mlflow``'s);
- the stage's markdown documents: ``report`` (``eval_report``'s tables) and ``model_card`` (the
  release card's summary: its title and ``CARD_SECTIONS``).

Files are read through the artifact store the outcome came from (``store.local_file``: in place on
a local root, a verified download from an object store), so the page looks the same either way.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from factory.jobs import METRICS_PREFIX
from factory.lineage import plot_files, run_page
from factory.release.model_card import CARD_FILE
from factory.runner import Outcome
from factory.store import ArtifactStore, Manifest

PLOT_MAX_PX = 800  # longest side of an embedded plot (the stages draw theirs at 100 dpi, <= 1000 px)
PLOT_MAX_BYTES = 150_000  # per embedded plot, before base64: metadata lives in Dagster's event log
DOC_MAX_CHARS = 20_000  # per markdown document; longer ones are cut at a line
CARD_SECTIONS = ("Model details", "Quantization")  # the model card's key figures
LOSS_CURVE = "loss_curve"
LOSS = "loss"
CELL_MAX_CHARS = 80  # a nested value inside a table cell, as JSON


def dagster_metadata(outcome: Outcome, store: ArtifactStore, tracking_uri: str) -> dict[str, Any]:
    """Everything above for one materialization; ``store`` holds its artifact and ``tracking_uri``
    is the MLflow store of its run."""
    manifest = outcome.manifest
    meta: dict[str, Any] = {
        "path": dg.MetadataValue.path(str(outcome.path)),
        "digest": manifest.digest,
        "artifact_key": manifest.key,
        "reused": outcome.reused,
        "mlflow_run_id": outcome.mlflow_run_id,
        "seconds": round(outcome.seconds, 2),
    }
    meta.update(stage_values(manifest.metadata))
    for rel in plot_files(manifest):
        name = rel.removesuffix(".png")
        meta[f"plot_{name}"] = png_markdown(name, store.local_file(manifest, rel).read_bytes())
    meta.update(documents(store, manifest))
    if outcome.mlflow_run_id:
        meta.update(run_entries(tracking_uri, outcome.mlflow_run_id, outcome.asset))
    return meta


# -- the stage's metadata ---------------------------------------------------------------------


def stage_values(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The stage's metadata as Dagster values: scalars as-is, tables as markdown, the rest as JSON."""
    out: dict[str, Any] = {}
    for name, value in metadata.items():
        if name == "mlflow_run_id":  # the outcome's (the run that built the artifact) is reported above
            continue
        rows = table_rows(value)
        if rows is not None:
            out[name] = dg.MetadataValue.md(markdown_table(rows))
        elif isinstance(value, (dict, list)):
            out[name] = dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif value is None:
            out[name] = "null"
    return out


def table_rows(value: Any) -> list[dict[str, Any]] | None:
    """``value`` as rows when it is a table: a list of mappings, or a mapping whose values are all
    mappings (its keys become the first column, headed ``name``); None otherwise."""
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return [_flat_row(r) for r in value]
    if isinstance(value, dict) and value and all(isinstance(r, dict) for r in value.values()):
        return [{"name": k, **_flat_row(r)} for k, r in value.items()]
    return None


def _flat_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One level of nesting becomes dotted columns (``heldout.accuracy``); deeper values stay whole."""
    flat: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            flat[k] = v
    return flat


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of ``rows``: the union of their columns, in order of appearance."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        text = ""
    elif isinstance(value, float):
        text = f"{value:.5g}"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, default=str)
        text = text if len(text) <= CELL_MAX_CHARS else text[: CELL_MAX_CHARS - 1] + "…"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


# -- plots ------------------------------------------------------------------------------------


def png_markdown(name: str, png: bytes) -> dg.MetadataValue:
    """A PNG as a markdown image that carries its data (``shrink_png``'d)."""
    data = base64.b64encode(shrink_png(png)).decode("ascii")
    return dg.MetadataValue.md(f"![{name}](data:image/png;base64,{data})")


def shrink_png(png: bytes, max_px: int = PLOT_MAX_PX, max_bytes: int = PLOT_MAX_BYTES) -> bytes:
    """``png`` resized so its longest side is at most ``max_px``, flattened onto white and reduced
    to a 256-colour palette (a plot has few colours: a third of the bytes, measured on the stages'
    plots), then halved while it is over ``max_bytes``."""
    from PIL import Image  # matplotlib's own image dependency

    image = Image.open(io.BytesIO(png)).convert("RGBA")
    image.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    flat = Image.new("RGBA", image.size, "white")
    flat.alpha_composite(image)
    rgb = flat.convert("RGB")
    while True:
        out = _encode(rgb.quantize(256))
        if len(out) <= max_bytes or min(rgb.size) <= 1:
            return out
        rgb = rgb.resize((max(1, rgb.width // 2), max(1, rgb.height // 2)), Image.Resampling.LANCZOS)


def _encode(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# -- MLflow: the run's page and its loss curves ----------------------------------------------


def run_entries(tracking_uri: str, run_id: str, asset: str) -> dict[str, Any]:
    """``mlflow_run`` (the run's page) and, when the run has loss curves, ``loss_curve``; nothing
    when this tracking store has no such run (a reused artifact built against another store, or
    whose run was deleted): the artifact is committed, its page only lacks the run."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        if err.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise
        return {}
    out: dict[str, Any] = {"mlflow_run": dg.MetadataValue.url(run_page(tracking_uri, run.info.experiment_id, run_id))}
    keys = sorted(k for k in run.data.metrics if _run_of(k) is not None)
    if keys:
        curves = {_run_of(k) or asset: [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, k),
                                                                           key=lambda m: (m.step, m.timestamp))]
                  for k in keys}
        out[LOSS_CURVE] = png_markdown(LOSS_CURVE, figure_png(loss_figure(curves, f"{asset}: training loss")))
    return out


def _run_of(metric: str) -> str | None:
    """The run a training-loss metric belongs to: ``""`` for the stage's one run (``train/loss``),
    ``<run>`` for ``train/<run>/loss``; None for any other metric."""
    if not metric.startswith(METRICS_PREFIX):
        return None
    head, _, last = metric[len(METRICS_PREFIX):].rpartition("/")
    return head if last == LOSS else None


def loss_figure(curves: Mapping[str, Sequence[tuple[int, float]]], title: str):
    """One line per run (``{label: [(step, loss), ...]}``) against the step; a matplotlib Figure
    (no pyplot: no global state in Dagster's process)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    ax = fig.subplots()
    if len(curves) > 10:  # the default cycle repeats after 10 colours; a grid has more runs
        ax.set_prop_cycle(color=[colormaps["tab20"](i % 20) for i in range(len(curves))])
    for label, points in curves.items():
        steps, losses = zip(*points, strict=True) if points else ((), ())
        ax.plot(steps, losses, label=label, marker="." if len(points) <= 30 else None, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=6, ncol=2 if len(curves) > 8 else 1)
    fig.tight_layout()
    return fig


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# -- markdown documents -----------------------------------------------------------------------


def documents(store: ArtifactStore, manifest: Manifest) -> dict[str, Any]:
    """The markdown the stage wrote at the top of its artifact: the model card's summary as
    ``model_card``, any other document (``report.md``) whole under its stem, each cut at
    ``DOC_MAX_CHARS``."""
    out: dict[str, Any] = {}
    for rel in sorted(r for r in manifest.files if "/" not in r and r.endswith(".md")):
        text = store.local_file(manifest, rel).read_text()
        if rel == CARD_FILE:
            out["model_card"] = dg.MetadataValue.md(_cut(card_summary(text)))
        else:
            out[rel.removesuffix(".md")] = dg.MetadataValue.md(_cut(text))
    return out


def card_summary(card: str) -> str:
    """The card's title and its ``CARD_SECTIONS`` (model details, quantization figures)."""
    sections: list[list[str]] = [[]]
    for line in card.splitlines():
        if line.startswith("## "):
            sections.append([])
        sections[-1].append(line)
    title = [line for line in sections[0] if line.startswith("# ")]
    kept = ["\n".join(s).strip() for s in sections[1:] if s[0][3:].strip() in CARD_SECTIONS]
    return "\n\n".join([*title, *kept]) + "\n"


def _cut(text: str) -> str:
    if len(text) <= DOC_MAX_CHARS:
        return text
    return text[: text.rfind("\n", 0, DOC_MAX_CHARS) + 1] + "\n…\n"
