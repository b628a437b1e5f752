"""Ray job for corpus processing stages (crawl, extraction, dedup, filtering, tokenizer, release)."""

from __future__ import annotations

from typing import Any

from ray_jobs.entry import cli, execute


def run(request: dict[str, Any]) -> dict[str, Any]:
    return execute(request)


if __name__ == "__main__":
    cli(run)
