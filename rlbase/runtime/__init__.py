"""Turning a config into a run: validation, budget fitting, the run directory, and ``run()``."""
