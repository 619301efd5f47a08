"""Operator commands that do not run the bridge: `check`, `offsets show|set|reset|export|import`,
`replay`, `dlq show|redrive`. Each builds the parts it needs from the config
(`bridge.runtime.wiring`) for one task and answers promptly."""

from bridge.ops._probe import OutOfRange
from bridge.ops.check import Probe, check
from bridge.ops.dlq import Record, RedriveResult, dead_letter_path, read_records, redrive
from bridge.ops.offsets import (
    CursorRow,
    as_dicts,
    lease_of,
    reset_offset,
    set_offset,
    show_offsets,
)
from bridge.ops.replay import ReplayResult, replay
from bridge.ops.transfer import export_offsets, import_offsets, parse_export

__all__ = [
    "CursorRow",
    "OutOfRange",
    "Probe",
    "Record",
    "RedriveResult",
    "ReplayResult",
    "as_dicts",
    "check",
    "dead_letter_path",
    "export_offsets",
    "import_offsets",
    "lease_of",
    "parse_export",
    "read_records",
    "redrive",
    "replay",
    "reset_offset",
    "set_offset",
    "show_offsets",
]
