"""The multi-sink chaos suite: one bridge, four sinks, faults, and invariants checked after
every scenario (README.md here)."""
