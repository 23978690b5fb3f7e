"""The demo: orchestration (run.py) and its report (report.py)."""
