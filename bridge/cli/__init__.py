"""The command line, `dicom-bridge` (`python -m bridge`): `run`, `check`, `offsets`, `replay`,
`dlq`, `simulate`, `demo`."""

from bridge.cli.main import main

__all__ = ["main"]
