"""Compose the sweep config (Hydra), validate every key once, and hand each module its typed section."""
