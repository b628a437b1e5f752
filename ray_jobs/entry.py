"""The command line every job module shares: read a JSON request, run it, print the metadata."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from factory.jobs import run_job


def cli(kind: str) -> None:
    parser = argparse.ArgumentParser(description=f"Run one factory stage as a '{kind}' job from a JSON request file.")
    parser.add_argument("request", type=Path)
    args = parser.parse_args()
    print(json.dumps(run_job(kind, json.loads(args.request.read_text())), indent=2, default=str))
