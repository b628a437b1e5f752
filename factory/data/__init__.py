"""Pre-training data: crawl ingest, extraction, dedup, filtering, tokenizer and data mix
(recipe: "Pre-Training Data")."""
