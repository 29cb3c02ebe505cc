"""Compose formulas according to a spec: breakdowns, per-op tables and one analyze()."""
