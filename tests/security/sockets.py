"""The sockets a process tree listens on, read from /proc (Linux), for the safe-default tests.

A socket is *listening* when it is a TCP socket in LISTEN state or an unconnected bound UDP
socket. `/proc/<pid>/net/*` lists every socket of the network namespace; a process's own
are those whose inode one of its file descriptors points at (`socket:[inode]`).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_TCP_LISTEN, _UDP_UNCONNECTED = "0A", "07"


@dataclass(frozen=True, order=True)
class Listening:
    protocol: str  # tcp, tcp6, udp, udp6
    host: str
    port: int
    pid: int


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (as long as they run)."""
    children: dict[int, list[int]] = {}
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            # `pid (comm) state ppid ...`; comm may contain spaces and parentheses.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending += children.get(current, [])
    return found


def listening(pid: int) -> list[Listening]:
    """Every socket `pid` or one of its descendants listens on, sorted."""
    found = []
    for member in tree(pid):
        inodes = _socket_inodes(member)
        for protocol in ("tcp", "tcp6", "udp", "udp6"):
            found += [
                Listening(protocol, host, port, member)
                for inode, host, port in _bound(member, protocol)
                if inode in inodes
            ]
    return sorted(found)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        descriptors = list((PROC / str(pid) / "fd").iterdir())
    except OSError:
        return inodes
    for descriptor in descriptors:
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _bound(pid: int, protocol: str) -> list[tuple[str, str, int]]:
    """(inode, host, port) of the listening sockets in `/proc/<pid>/net/<protocol>`."""
    try:
        lines = (PROC / str(pid) / "net" / protocol).read_text().splitlines()[1:]
    except OSError:
        return []
    wanted = _TCP_LISTEN if protocol.startswith("tcp") else _UDP_UNCONNECTED
    found = []
    for line in lines:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == wanted:
            host, port = local.split(":")
            found.append((inode, _address(host), int(port, 16)))
    return found


def _address(hexadecimal: str) -> str:
    """An address as the kernel writes it: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hexadecimal)
    ordered = b"".join(raw[start : start + 4][::-1] for start in range(0, len(raw), 4))
    return str(ipaddress.ip_address(ordered))
