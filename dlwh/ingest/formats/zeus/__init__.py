"""Zeus: per-power-limit profiles and summary files of its public sweeps."""
