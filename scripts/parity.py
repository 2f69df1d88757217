"""Side by side with Stable-Baselines3: ``python scripts/parity.py run|report ...`` (see ``rlbase.report.parity``)."""

from rlbase.report.parity import main

if __name__ == "__main__":
    main()
