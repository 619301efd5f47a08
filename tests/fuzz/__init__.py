"""Property-based fuzzing (hypothesis) of the bridge's untrusted inputs: feed pages and config
files. Example counts are modest so the suite stays fast; `FUZZ_SCALE=50` runs
fifty times as many, with fresh random seeds (see `tests/fuzz/settings.py`)."""
