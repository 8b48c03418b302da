"""Outputs: Parquet / JSONL files written as shards come (files.py), Datasets and save_to_disk
folders (dataset.py), and the numbers of an export (stats.py)."""
