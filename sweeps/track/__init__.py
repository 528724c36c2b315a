"""Tracking: the SweepTracker (the only code that talks to MLflow), password redaction, the UI."""
