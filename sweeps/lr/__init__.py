"""The learning-rate range test: suggestions from a loss curve (pure) and the tracked run on an objective."""
