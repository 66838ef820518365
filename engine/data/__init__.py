"""Synthetic cohort and real-format loaders."""
