"""The Insecure Code Detector that Code Shield applies (recipe: "Safety characteristics", Code
Shield): bandit (Python AST rules, each with a test id, a severity and a confidence) under an
ICD-style policy. Findings at or above ``block_severity`` with at least ``min_confidence`` block,
lower ones warn, some test ids always block (hard-coded secrets, SQL built from strings) and some
are ignored (bare imports, asserts). ``# nosec`` comments are ignored: generated code must not be
able to switch its own scanner off.

It sits low so that both the ``code_shield`` stage (``factory.safety``) and the post-training code
scorer (``factory.post.sandbox``, which scans every program before running it) use the one scanner.
A scan costs ~4 ms warm per snippet (~0.4 ms per snippet in a batch of 200).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from factory.core.stage import StageConfig

Level = Literal["LOW", "MEDIUM", "HIGH"]
Verdict = Literal["allow", "warn", "block"]
_RANK = {"UNDEFINED": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3}
ORDER: tuple[Verdict, ...] = ("allow", "warn", "block")


class CodeShieldPolicy(StageConfig):
    """When a bandit finding blocks or warns."""

    block_severity: Level = Field(
        "MEDIUM", description="Findings at or above this severity block (given the confidence).")
    min_confidence: Level = Field(
        "MEDIUM", description="Least confidence for a finding to block; less confident ones warn.")
    blocked_tests: list[str] = Field(
        default_factory=lambda: ["B105", "B106", "B107", "B608"],
        description="Bandit test ids that always block (hard-coded passwords, SQL built from strings).",
    )
    ignored_tests: list[str] = Field(
        default_factory=lambda: ["B101", "B403", "B404", "B603"],
        description="Bandit test ids never reported (assert, bare pickle/subprocess imports, "
        "subprocess without a shell).",
    )
    on_syntax_error: Verdict = Field("warn", description="Verdict for code that does not parse as Python.")


@dataclass
class Finding:
    test_id: str
    test_name: str
    severity: str
    confidence: str
    line: int
    text: str


@dataclass
class ScanResult:
    verdict: Verdict
    parsed: bool
    findings: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "parsed": self.parsed, "findings": [asdict(f) for f in self.findings]}


def _verdict(findings: Sequence[Finding], policy: CodeShieldPolicy) -> Verdict:
    worst = "allow"
    for f in findings:
        blocks = f.test_id in policy.blocked_tests or (
            _RANK[f.severity] >= _RANK[policy.block_severity] and _RANK[f.confidence] >= _RANK[policy.min_confidence])
        v = "block" if blocks else "warn"
        worst = max(worst, v, key=ORDER.index)
    return worst


def scan_many(codes: Sequence[str], policy: CodeShieldPolicy) -> list[ScanResult]:
    """Scan Python sources with bandit (one run over a temp folder) and apply the policy."""
    from bandit.core import config as b_config
    from bandit.core import manager as b_manager

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, code in enumerate(codes):
            path = Path(tmp) / f"snippet_{i:05d}.py"
            path.write_text(code)
            paths.append(str(path))
        mgr = b_manager.BanditManager(b_config.BanditConfig(), "file", quiet=True, ignore_nosec=True)
        mgr.discover_files(paths)
        mgr.run_tests()
        skipped = {Path(name).name for name, _ in mgr.get_skipped()}
        by_file: dict[str, list[Finding]] = {Path(p).name: [] for p in paths}
        for issue in mgr.get_issue_list():
            if issue.test_id in policy.ignored_tests:
                continue
            by_file[Path(issue.fname).name].append(Finding(
                issue.test_id, issue.test, issue.severity, issue.confidence, issue.lineno, issue.text))
    results = []
    for p in paths:
        name = Path(p).name
        if name in skipped:
            results.append(ScanResult(policy.on_syntax_error, False))
        else:
            found = sorted(by_file[name], key=lambda f: (f.line, f.test_id))
            results.append(ScanResult(_verdict(found, policy), True, found))
    return results


def scan(code: str, policy: CodeShieldPolicy | None = None) -> ScanResult:
    """Verdict (allow / warn / block) and findings for one Python source."""
    return scan_many([code], policy or CodeShieldPolicy())[0]
