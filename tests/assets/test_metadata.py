"""What a materialization shows in Dagster (assets.metadata): embedded plots, the loss curve drawn
from the stage run's per-step losses in MLflow, tables, the MLflow run's page, the model card."""

import base64
import io
import re

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from assets.metadata import (
    PLOT_MAX_BYTES,
    card_summary,
    dagster_metadata,
    figure_png,
    loss_figure,
    markdown_table,
    shrink_png,
    stage_values,
    table_rows,
)
from factory.core.stage import MetricsTarget, StageContext
from factory.lineage import mlflow_ui, run_page
from factory.runner import Outcome
from factory.store import ArtifactStore
from factory.train.stage_training import log_history


def _png(width: int, height: int, noise: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8) if noise else \
        np.full((height, width, 3), (30, 120, 200), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _image(entry: dg.MetadataValue) -> tuple[str, Image.Image, bytes]:
    """The alt text, the decoded image and its bytes of a markdown-image entry."""
    assert isinstance(entry, dg.MarkdownMetadataValue)
    match = re.fullmatch(r"!\[([^\]]*)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", entry.md_str)
    assert match, entry.md_str[:80]
    data = base64.b64decode(match.group(2))
    return match.group(1), Image.open(io.BytesIO(data)), data


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _stage_run(tracking_uri: str, histories: dict[str, list[dict[str, float]]]) -> tuple[str, str]:
    """An MLflow run whose curves were filed the way a stage job files them (``train/`` target,
    ``log_history`` per run); returns (experiment id, run id)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("factory/test") or client.get_experiment(
        client.create_experiment("factory/test"))
    run_id = client.create_run(experiment.experiment_id).info.run_id
    target = MetricsTarget(tracking_uri, run_id, "train/")
    ctx = StageContext(log=lambda _: None, metrics_sink=target.log, metrics_target=target)
    for name, history in histories.items():
        log_history(name, history, ctx)
    ctx.log_metrics({"len64/short_val_loss": 3.0}, 5)  # a gate curve: not a training loss
    return experiment.experiment_id, run_id


def _artifact(tmp_path, files: dict[str, bytes], metadata: dict) -> tuple[ArtifactStore, Outcome]:
    store = ArtifactStore(tmp_path / "artifacts")

    def produce(out, _work):
        for rel, data in files.items():
            (out / rel).write_bytes(data)
        return metadata

    manifest, _ = store.build("dpo_round_1", {"c": 1}, {}, produce, code_version="t")
    return store, Outcome("dpo_round_1", manifest, False, "", store.location(manifest), 1.234)


RUNS = {"run_0": [{"step": 1.0, "loss": 2.5, "lr": 1e-3}, {"step": 2.0, "loss": 2.1, "lr": 1e-3},
                  {"step": 3.0, "loss": 1.8, "lr": 5e-4}],
        "run_1": [{"step": 1.0, "loss": 2.6, "lr": 1e-3}, {"step": 2.0, "loss": 2.4, "lr": 1e-3}]}


def test_materialization_shows_plots_loss_curve_tables_and_the_run_page(tmp_path, tracking_uri):
    card = ("# factory-chat\n\n## Model details\n- Parameters: 1,234\n\n## Files\n| a |\n|---|\n\n"
            "## Quantization\n- FP8 weight round-trip: max abs error 0.01\n\n## Limitations\n- small\n")
    metadata = {"pairs": 12, "best_run": 1, "note": None,
                "runs": [{"seed": 1, "beta": 0.1, "heldout": {"accuracy": 0.25}},
                         {"seed": 2, "beta": 0.5, "heldout": {"accuracy": 0.5}}],
                "weights": {"general": 0.7, "code": 0.3}}
    files = {"isoflops.png": _png(1000, 500), "tasks.png": _png(300, 200), "README.md": card.encode(),
             "report.md": b"# Evaluation report\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"}
    store, outcome = _artifact(tmp_path, files, metadata)
    experiment, run_id = _stage_run(tracking_uri, RUNS)
    outcome.mlflow_run_id = run_id

    meta = dagster_metadata(outcome, store, tracking_uri)

    assert meta["digest"] == outcome.manifest.digest and meta["pairs"] == 12 and meta["note"] == "null"
    assert meta["seconds"] == 1.23 and meta["reused"] is False
    # Plots: the big one downscaled to 800 px wide (aspect kept), the small one kept at its size; both
    # in a palette, the small one's one colour as it was.
    name, image, _ = _image(meta["plot_isoflops"])
    assert name == "isoflops" and image.format == "PNG" and image.size == (800, 400) and image.mode == "P"
    image = _image(meta["plot_tasks"])[1]
    assert image.size == (300, 200) and image.convert("RGB").getpixel((150, 100)) == (30, 120, 200)
    # The loss curve: drawn (640x360 at 100 dpi) from the run's losses, one line per run.
    name, image, _ = _image(meta["loss_curve"])
    assert name == "loss_curve" and image.size == (640, 360)
    # Tables: rows of dicts become markdown rows, one nesting level as dotted columns (in the
    # manifest's key order), the rest JSON.
    assert meta["runs"].md_str.splitlines() == ["| beta | heldout.accuracy | seed |", "|---|---|---|",
                                                "| 0.1 | 0.25 | 1 |", "| 0.5 | 0.5 | 2 |"]
    assert meta["weights"] == dg.MetadataValue.json({"general": 0.7, "code": 0.3})
    assert meta["mlflow_run"] == dg.MetadataValue.url(f"http://127.0.0.1:5000/#/experiments/{experiment}/runs/{run_id}")
    # Documents: the report whole, the model card's title and key sections only.
    assert meta["report"].md_str.startswith("# Evaluation report\n\n| a | b |")
    assert meta["model_card"].md_str == ("# factory-chat\n\n## Model details\n- Parameters: 1,234\n\n"
                                         "## Quantization\n- FP8 weight round-trip: max abs error 0.01\n")


def test_loss_curve_lines_are_the_runs_losses(tracking_uri):
    from assets.metadata import run_entries

    fig = loss_figure({"run_0": [(1, 2.5), (2, 2.1), (3, 1.8)], "run_1": [(1, 2.6), (2, 2.4)]}, "dpo")
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["run_0", "run_1"]
    assert [list(line.get_xdata()) for line in lines] == [[1, 2, 3], [1, 2]]
    assert [list(line.get_ydata()) for line in lines] == [[2.5, 2.1, 1.8], [2.6, 2.4]]
    # Other losses give another picture.
    other = loss_figure({"run_0": [(1, 2.5), (2, 1.0), (3, 0.4)], "run_1": [(1, 2.6), (2, 2.4)]}, "dpo")
    assert figure_png(fig) != figure_png(other)
    # A run with no loss curve draws nothing.
    _, run_id = _stage_run(tracking_uri, {})
    assert set(run_entries(tracking_uri, run_id, "prompt_guard")) == {"mlflow_run"}
    assert run_entries(tracking_uri, "0" * 32, "prompt_guard") == {}  # a run this store does not hold


def test_run_entries_read_each_runs_history_in_step_order(tracking_uri, monkeypatch):
    import assets.metadata as metadata

    drawn = {}
    monkeypatch.setattr(metadata, "loss_figure", lambda curves, title: drawn.update(curves=curves, title=title)
                        or loss_figure(curves, title))
    _, run_id = _stage_run(tracking_uri, RUNS)
    from mlflow import MlflowClient

    MlflowClient(tracking_uri).log_metric(run_id, "train/loss", 3.25, step=1)  # a stage's own run, unprefixed
    metadata.run_entries(tracking_uri, run_id, "dpo_round_1")
    assert drawn["title"] == "dpo_round_1: training loss"
    assert drawn["curves"] == {"dpo_round_1": [(1, 3.25)], "run_0": [(1, 2.5), (2, 2.1), (3, 1.8)],
                               "run_1": [(1, 2.6), (2, 2.4)]}


def test_shrink_png_caps_bytes_of_a_plot_that_compresses_badly():
    noisy = _png(700, 700, noise=True)  # ~1.5 MB: under the pixel cap, far over the byte cap
    assert len(noisy) > PLOT_MAX_BYTES
    out = shrink_png(noisy)
    assert len(out) <= PLOT_MAX_BYTES and Image.open(io.BytesIO(out)).size == (350, 350)  # halved once


def test_tables_from_mappings_of_rows_and_cells():
    values = stage_values({"steps": {"tokenize": {"seconds": 1.5, "counts": {"streams": 4}},
                                     "select": {"seconds": 0.25, "counts": {}, "error": "a|b"}}})
    assert values["steps"].md_str.splitlines() == [
        "| name | seconds | counts.streams | error |", "|---|---|---|---|",
        "| tokenize | 1.5 | 4 |  |", "| select | 0.25 |  | a\\|b |"]
    assert markdown_table(table_rows([{"deep": {"a": [1, 2]}}])) == '| deep.a |\n|---|\n| [1, 2] |'


def test_mlflow_ui_address():
    assert mlflow_ui("sqlite:////home/x/.factory/mlflow.db") == "http://127.0.0.1:5000"
    assert mlflow_ui("http://mlflow.internal:8080/") == "http://mlflow.internal:8080"
    assert run_page("https://m.example", "7", "abc") == "https://m.example/#/experiments/7/runs/abc"


def test_model_card_summary_of_the_rendered_card():
    card = "# n\n\n## Model details\n- a\n\n## Intended use\nx\n"
    assert card_summary(card) == "# n\n\n## Model details\n- a\n"
