"""The import arrows of DESIGN.md: factory/ never imports dagster or assets; kernels/ never imports factory."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: str) -> dict[str, set[str]]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_factory_does_not_import_dagster_or_assets():
    offenders = {f: n & {"dagster", "assets"} for f, n in _imports("factory").items() if n & {"dagster", "assets"}}
    assert offenders == {}


def test_kernels_do_not_import_factory():
    offenders = {f: n & {"factory", "assets", "ray_jobs"} for f, n in _imports("kernels").items() if n & {"factory", "assets", "ray_jobs"}}
    assert offenders == {}


def test_ray_jobs_do_not_import_dagster():
    assert {f for f, n in _imports("ray_jobs").items() if n & {"dagster", "assets"}} == set()
