"""Capacity model: latency-vs-load curves per model and replica kind, capacity at an SLO,
replicas needed for a forecast (model.py, pure), and the profiling sweep that measures the
curve on a real replica (profile.py)."""
