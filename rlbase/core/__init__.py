"""The bottom layer: settings, seeding and random streams, checkpoints, networks, replay and rollout storage,
the logger and evaluation. Imports nothing else of rlbase."""
