"""rlbase: deep-RL research code."""
