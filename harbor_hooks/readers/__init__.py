"""Readers: a trial's files (files.py, bounded and confined), what a trial is (discover.py), its
metadata (meta.py), and one module per agent output format (atif.py, episodes.py) into the
format-neutral Trace (trace.py)."""
