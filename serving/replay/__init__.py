"""Trace replay load generator: traces (parsing), payloads (what is sent), runner (I/O), results (summary)."""
