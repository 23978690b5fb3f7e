"""Anomaly detection: pure streaming detectors, a combiner, incidents, and the NAB benchmark."""
