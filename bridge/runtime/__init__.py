"""The running bridge: the app (`app`), the config wired into parts (`wiring`), the pipeline
of routes with its shutdown (`pipeline`), metrics and readiness (`telemetry`) served by the
listener (`listener`), logs and the terminal's progress display."""
