"""Job for corpus stages (crawl, extraction, dedup, filtering, tokenizer, release bundle)."""

from ray_jobs.entry import cli

if __name__ == "__main__":
    cli("curate")
