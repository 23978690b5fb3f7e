"""Capacity model: latency-vs-load curves per model and replica kind, capacity at an SLO,
replicas needed for a forecast (model.py, pure), the profiling sweep that measures the
curve on a real replica (profile.py), and the fit from stored telemetry plus the newest
capacity for the loop (telemetry.py: `fit_from_store`, `latest_capacity`)."""
