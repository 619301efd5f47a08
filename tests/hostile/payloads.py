"""The bodies a hostile feed answers with, cheap to make and to send.

The gzip bomb is built once per process from one compressed block repeated: a deflate block
emitted after a full flush does not depend on what came before it, so 2,048 copies of the
block that encodes 1 MiB of zeros are 2 GiB of zeros, in about 2 MB. Only the gzip trailer's
CRC-32 needs the whole (virtual) payload; it is computed over the same zero buffer.
"""

from __future__ import annotations

import functools
import struct
import zlib

import orjson

#: Uncompressed size of one block of the gzip bomb, and how many blocks it holds.
BOMB_BLOCK = 1 << 20
BOMB_BLOCKS = 2048
#: What the gzip bomb inflates to: 2 GiB.
BOMB_INFLATED = BOMB_BLOCK * BOMB_BLOCKS
#: The junk body's size (300 MiB) and the piece it repeats.
JUNK_BYTES = 300 * 1024 * 1024
JUNK_CHUNK = b'{"sequence":1,"junk":"' + b"x" * (65_536 - 25) + b'"},'  # 64 KiB

#: What a reverse proxy in front of the service shows during maintenance, with status 200.
MAINTENANCE_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Down for maintenance</title></head>\n"
    b"<body><h1>We'll be back soon</h1><p>The DICOM service is undergoing scheduled "
    b"maintenance.</p></body></html>\n"
)
#: A JSON object where the feed serves an array (an API gateway's error, with status 200).
JSON_OBJECT = orjson.dumps(
    {"error": {"code": "ServiceUnavailable", "message": "The backend is warming up."}}
)


@functools.cache
def gzip_bomb() -> bytes:
    """A valid gzip member of 2 GiB of zeros, ~2 MB long (made in about half a second)."""
    zeros = bytes(BOMB_BLOCK)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)  # with the header
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(BOMB_BLOCKS):
        crc = zlib.crc32(zeros, crc)
    final_empty_block = b"\x03\x00"
    trailer = struct.pack("<II", crc, BOMB_INFLATED & 0xFFFFFFFF)
    return first + block * (BOMB_BLOCKS - 1) + final_empty_block + trailer
