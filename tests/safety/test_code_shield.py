import pytest

from factory.core.insecure_code import CodeShieldPolicy, scan, scan_many
from factory.safety.code_shield import REGRESSION_SET, evaluate_regression, extract_code


def test_blocks_every_insecure_snippet_and_allows_every_safe_one():
    names = list(REGRESSION_SET)
    results = scan_many([REGRESSION_SET[n][0] for n in names], CodeShieldPolicy())
    for name, r in zip(names, results, strict=True):
        expected = "block" if REGRESSION_SET[name][1] else "allow"
        assert r.verdict == expected, (name, r.to_dict())
    metrics, rows = evaluate_regression(CodeShieldPolicy())
    assert metrics["insecure_block_rate"] == 1.0 and metrics["block_precision"] == 1.0
    assert metrics["safe_allow_rate"] == 1.0 and len(rows) == len(REGRESSION_SET)


def test_findings_carry_bandit_ids_and_nosec_is_ignored():
    r = scan("import subprocess\nsubprocess.call('ls ' + x, shell=True)  # nosec\n")
    assert r.verdict == "block" and [f.test_id for f in r.findings] == ["B602"]
    assert r.findings[0].severity == "HIGH" and r.findings[0].line == 2


def test_policy_thresholds_and_lists():
    code = REGRESSION_SET["pickle_loads"][0]  # B301: MEDIUM severity, HIGH confidence
    assert scan(code, CodeShieldPolicy(block_severity="HIGH")).verdict == "warn"
    assert scan(code, CodeShieldPolicy(ignored_tests=["B301", "B403"])).verdict == "allow"
    weak = REGRESSION_SET["hardcoded_password"][0]  # B105: LOW severity
    assert scan(weak, CodeShieldPolicy(blocked_tests=[])).verdict == "warn"


@pytest.mark.parametrize("verdict", ["allow", "warn", "block"])
def test_unparseable_code_gets_the_configured_verdict(verdict):
    r = scan("def f(:\n    pass\n", CodeShieldPolicy(on_syntax_error=verdict))
    assert r.verdict == verdict and not r.parsed


def test_extract_code_from_fenced_answer():
    answer = "Here you go:\n```python\nimport os\nos.system(cmd)\n```\nand\n```\nprint(1)\n```"
    assert extract_code(answer) == "import os\nos.system(cmd)\n\nprint(1)"
    assert extract_code("x = 1") == "x = 1"


@pytest.mark.slow
def test_stage_scans_chat_model_generations(tmp_path, tokenizer_dir, lm_dir):
    import json

    from factory.core.stage import StageContext
    from factory.safety.code_shield import CodeShieldConfig, run_code_shield

    cfg = CodeShieldConfig(prompts=3, samples_per_prompt=2, max_new_tokens=8, batch_size=6)
    out = tmp_path / "cs"
    meta = run_code_shield(cfg, {"chat_model": lm_dir, "tokenizer": tokenizer_dir}, out,
                           StageContext(log=lambda m: None))
    assert json.loads((out / "policy.json").read_text()) == CodeShieldPolicy().model_dump()
    rows = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == meta["generations"]["scanned"] == 6
    g = meta["generations"]
    assert g["allow"] + g["warn"] + g["block"] == 6
    assert meta["regression"]["insecure_block_rate"] == 1.0
    assert len((out / "regression.jsonl").read_text().splitlines()) == len(REGRESSION_SET)
