"""Helpers shared by tests (seeded stores, a running API)."""
