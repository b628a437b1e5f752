"""Per-stage code versions: a stage re-keys when the code it runs changes, and only then.

The stage tests edit a copy of the project's packages in a temporary folder and index the copy.
"""

import shutil
from pathlib import Path

import pytest

from factory.config import load_profile
from factory.core.code_version import CODE_PACKAGES, CodeIndex
from factory.stages import stage_specs

ROOT = Path(__file__).resolve().parents[2]
SPECS = stage_specs(load_profile("demo"))
# The stages whose code imports the trainer (directly or through stage_training, lm_runs, ...).
TRAINING = {
    "data_mix", "scaling_law_fit", "base_checkpoint", "long_context_checkpoint", "annealed_checkpoint",
    "code_expert", "multilingual_expert", "reward_model", "sft_round_1", "dpo_round_1", "reward_round_2", "sft_round_2",
    "dpo_round_2", "llama_guard", "prompt_guard", "eval_report",
}


def _versions(root: Path) -> dict[str, str]:
    index = CodeIndex(root)
    return {spec.asset: index.version(spec.target, spec.config_class) for spec in SPECS}


def _edit(root: Path, module: str, old: str, new: str) -> None:
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def before() -> dict[str, str]:
    return {spec.asset: spec.code_version for spec in SPECS}  # this checkout's index, cached per process


@pytest.fixture
def tree(tmp_path) -> Path:
    for package in CODE_PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _changed(before: dict[str, str], root: Path) -> set[str]:
    after = _versions(root)
    return {asset for asset in before if after[asset] != before[asset]}


def test_a_copy_of_the_checkout_elsewhere_has_the_same_versions(before, tree):
    assert _versions(tree) == before  # a cluster job's working_dir agrees with the driver's checkout
    # Same code, same version: the expert stages share a function, so do the rounds' stages; otherwise
    # every stage runs its own code.
    assert before["code_expert"] == before["multilingual_expert"]
    assert before["sft_round_1"] == before["sft_round_2"] and before["dpo_round_1"] == before["dpo_round_2"]
    assert before["preference_data"] == before["preference_round_2"]
    assert before["reward_model"] == before["reward_round_2"]
    assert len(set(before.values())) == len(before) - 5


def test_docstring_and_comment_edits_in_the_report_change_no_version(before, tree):
    _edit(tree, "factory.release.report", '"""The ``eval_report`` stage:', '"""The ``eval_report`` stage, edited:')
    _edit(tree, "factory.release.report", "    info = tokenizer_info(", "    # a comment\n    info = tokenizer_info(")
    _edit(tree, "factory.release.report", "ctx: StageContext) -> dict[str, Any]:\n    from factory.model.checkpoint_io",
          'ctx: StageContext) -> dict[str, Any]:\n    """A new docstring."""\n    from factory.model.checkpoint_io')
    assert _changed(before, tree) == set()


def test_a_code_edit_in_a_module_only_eval_report_imports_changes_only_eval_report(before, tree):
    _edit(tree, "factory.release.report", "def run_eval_report(", "_EDITED = 1\n\n\ndef run_eval_report(")
    assert _changed(before, tree) == {"eval_report"}


def test_a_trainer_edit_changes_the_training_stages_and_not_the_crawl(before, tree):
    _edit(tree, "factory.train.trainer", "from __future__ import annotations\n",
          "from __future__ import annotations\n\n_EDITED = 1\n")
    changed = _changed(before, tree)
    assert changed == TRAINING
    assert "raw_crawl" not in changed and "tokenizer" not in changed


def _package(root: Path, files: dict[str, str]) -> CodeIndex:
    for name, text in {"factory/__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return CodeIndex(root)


def test_function_level_and_literal_dynamic_imports_are_followed(tmp_path):
    files = {
        "factory/stage.py": "def run():\n    from factory.helper import f\n    return f()\n",
        "factory/helper.py": "import importlib\n\ndef f():\n    return importlib.import_module('factory.deep').X\n",
        "factory/deep.py": "X = 1\n",
        "factory/unrelated.py": "Y = 1\n",
    }
    index = _package(tmp_path, files)
    assert index.closure({"factory.stage"}) == {"factory", "factory.stage", "factory.helper", "factory.deep"}
    v1 = index.version("factory.stage:run")
    assert _package(tmp_path, {**files, "factory/deep.py": "X = 2\n"}).version("factory.stage:run") != v1
    assert _package(tmp_path, {**files, "factory/unrelated.py": "Y = 2\n"}).version("factory.stage:run") == v1


def test_only_docstrings_comments_and_layout_are_normalized_away(tmp_path):
    plain = "def f(x):\n    return x + 1\n"
    index = _package(tmp_path, {"factory/m.py": plain})
    v = index.version("factory.m:f")
    same = '"""Module doc."""\n\n\ndef f(x):  # note\n    """Doc."""\n    return (x +\n            1)\n'
    assert _package(tmp_path, {"factory/m.py": same}).version("factory.m:f") == v
    assert _package(tmp_path, {"factory/m.py": plain.replace("1", "2")}).version("factory.m:f") != v
    assert index.version("factory.m:g") != v  # another target of the same module is another stage's code


def test_a_target_outside_the_project_counts_by_its_name(tmp_path):
    index = _package(tmp_path, {})
    assert index.version("stage_fns:slow_stage") != index.version("stage_fns:failing_stage")
    assert index.closure({"stage_fns"}) == set()
