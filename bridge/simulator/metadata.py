"""DICOM JSON metadata (PS3.18 F.2) rendered from a precomputed byte template.

Served with every Current or Replaced entry when `includeMetadata=true`, so it must cost a
byte join, never a JSON encode: the template holds every constant byte (tag keys, VRs,
padding) and `render` splices in the few per-instance values, which callers keep already
encoded. Keys are 8-hex-digit uppercase tags in ascending order, IS values are numbers and
PN values are `{"Alphabetic": ...}` objects, as fo-dicom writes them. A private UT element
pads the document to the configured approximate size, so benchmarks can ask for ~4 KB.
"""

from __future__ import annotations

from enum import Enum

#: Modality -> SOP Class UID of its usual storage class.
SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "NM": "1.2.840.10008.5.1.4.1.1.20",
    "XA": "1.2.840.10008.5.1.4.1.1.12.1",
}
MODALITIES = tuple(SOP_CLASSES)
_PRIVATE_CREATOR = "DICOM-CHANGEFEED-SIMULATOR"
_FILLER = b"Simulated padding so change-feed metadata reaches a realistic size. "


class _Kind(Enum):
    TEXT = "text"  # JSON-safe ASCII spliced between quotes (UIDs, codes, dates)
    JSON = "json"  # an already encoded JSON string, quotes included
    PERSON = "person"  # an encoded JSON string that becomes {"Alphabetic": ...}
    NUMBER = "number"  # digits


#: (tag, VR, kind) in ascending tag order; `render` takes the values in this order.
_LAYOUT = (
    ("00080016", "UI", _Kind.TEXT),  # SOPClassUID
    ("00080018", "UI", _Kind.TEXT),  # SOPInstanceUID
    ("00080020", "DA", _Kind.TEXT),  # StudyDate
    ("00080030", "TM", _Kind.TEXT),  # StudyTime
    ("00080050", "SH", _Kind.TEXT),  # AccessionNumber
    ("00080060", "CS", _Kind.TEXT),  # Modality
    ("00100010", "PN", _Kind.PERSON),  # PatientName
    ("00100020", "LO", _Kind.JSON),  # PatientID
    ("0020000D", "UI", _Kind.TEXT),  # StudyInstanceUID
    ("0020000E", "UI", _Kind.TEXT),  # SeriesInstanceUID
    ("00200011", "IS", _Kind.NUMBER),  # SeriesNumber
    ("00200013", "IS", _Kind.NUMBER),  # InstanceNumber
)
_PADDING_BEFORE = "00100010"  # group 0009 sorts between 0008 and 0010
_OPEN = {_Kind.TEXT: b'["', _Kind.JSON: b"[", _Kind.PERSON: b'[{"Alphabetic":', _Kind.NUMBER: b"["}
_CLOSE = {_Kind.TEXT: b'"]}', _Kind.JSON: b"]}", _Kind.PERSON: b"}]}", _Kind.NUMBER: b"]}"}
_SAMPLE_UID = b"1.2.826.0.1.3680043.8.498." + b"7" * 34  # as generated UIDs are
#: Typical spliced values, used to size the padding.
_SAMPLE = (
    b"1.2.840.10008.5.1.4.1.1.2",
    _SAMPLE_UID,
    b"20240101",
    b"101500",
    b"ACC0012345",
    b"CT",
    b'"Doe^Jane"',
    b'"PID-012345"',
    _SAMPLE_UID,
    _SAMPLE_UID,
    b"2",
    b"17",
)


class MetadataTemplate:
    """Renders one instance's metadata; `size` is the approximate document size in bytes."""

    def __init__(self, size: int = 0) -> None:
        self._parts = self._build(b"")
        padding = size - len(self.render(*_SAMPLE))
        if padding > 0:
            self._parts = self._build(self._padding(padding))

    def render(self, *values: bytes) -> bytes:
        """Splice values (in `_LAYOUT` order, already encoded) into the template."""
        pieces: list[bytes] = [b""] * (2 * len(values) + 1)
        pieces[0::2] = self._parts
        pieces[1::2] = values
        return b"".join(pieces)

    @staticmethod
    def _build(padding: bytes) -> list[bytes]:
        parts: list[bytes] = []
        pending = b"{"
        for tag, vr, kind in _LAYOUT:
            if tag == _PADDING_BEFORE:
                pending += padding
            parts.append(pending + f'"{tag}":{{"vr":"{vr}","Value":'.encode() + _OPEN[kind])
            pending = _CLOSE[kind] + b","
        parts.append(pending[:-1] + b"}")
        return parts

    @staticmethod
    def _padding(size: int) -> bytes:
        creator = f'"00090010":{{"vr":"LO","Value":["{_PRIVATE_CREATOR}"]}},'.encode()
        head = b'"00091000":{"vr":"UT","Value":["'
        tail = b'"]},'
        length = max(1, size - len(creator) - len(head) - len(tail))
        text = (_FILLER * (length // len(_FILLER) + 1))[:length]
        return creator + head + text + tail
