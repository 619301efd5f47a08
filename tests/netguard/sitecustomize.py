"""The network guard of the Python processes the tests start (the bridge CLI, the simulator,
the HTTP helper, the peers): a connection or a name lookup that would leave loopback is
refused with `NetworkGuardError` (a PermissionError) before anything is sent, and recorded
in the file `$NETWORK_GUARD_LOG` names, which the test session checks after every test.

The test session puts this directory on PYTHONPATH (tests/conftest.py), so Python imports
this module at startup in every child process. It covers Python's socket module (connect,
connect_ex, sendto, getaddrinfo, gethostbyname) and uvloop's loop, whose connections and
lookups bypass it. Sockets that C libraries open themselves (librdkafka) are outside it.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import ipaddress
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

LOG = "NETWORK_GUARD_LOG"
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_INET = (socket.AF_INET, socket.AF_INET6)


class NetworkGuardError(PermissionError):
    pass


def is_local(host: Any) -> bool:
    """Whether `host` (an address, a name, or None for the local host) stays on loopback;
    any other name is refused without being looked up."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%", 1)[0].lower()
    if host in _LOCAL_NAMES or host.endswith(".localhost") or host == "":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback or address.is_unspecified


def refuse(what: str, host: Any, port: Any = None) -> None:
    """Record and refuse a `what` (connect, lookup...) to `host`, unless it is local."""
    if is_local(host):
        return
    where = f"{host}:{port}" if port is not None else str(host)
    message = f"network guard: {what} {where} refused (the tests may only reach loopback)"
    path = os.environ.get(LOG)
    if path:
        line = f"{os.getpid()} {' '.join(sys.argv)[:200]}: {message}\n".encode()
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)
    raise NetworkGuardError(message)


def _host_port(address: Any) -> tuple[Any, Any]:
    if isinstance(address, tuple) and address:
        return address[0], address[1] if len(address) > 1 else None
    return None, None


def _guard_socket() -> None:
    real = socket.socket

    def checked(method: Callable, what: str, address_at: int = 0) -> Callable:
        @functools.wraps(method)
        def guarded(self: socket.socket, *args: Any) -> Any:
            if self.family in _INET and args:
                refuse(what, *_host_port(args[address_at]))
            return method(self, *args)

        return guarded

    real.connect = checked(real.connect, "connect")
    real.connect_ex = checked(real.connect_ex, "connect")
    real.sendto = checked(real.sendto, "sendto", address_at=-1)

    def lookup(function: Callable) -> Callable:
        @functools.wraps(function)
        def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
            refuse("lookup of", host, args[0] if args else kwargs.get("port"))
            return function(host, *args, **kwargs)

        return guarded

    socket.getaddrinfo = lookup(socket.getaddrinfo)
    socket.gethostbyname = lookup(socket.gethostbyname)
    socket.gethostbyname_ex = lookup(socket.gethostbyname_ex)


def _guard_uvloop(loop: type) -> None:
    create_connection = loop.create_connection
    sock_connect = loop.sock_connect
    create_datagram_endpoint = loop.create_datagram_endpoint
    getaddrinfo = loop.getaddrinfo

    async def guarded_create_connection(self, factory, host=None, port=None, **options):
        refuse("connect", host, port)
        return await create_connection(self, factory, host, port, **options)

    async def guarded_sock_connect(self, sock, address):
        if sock.family in _INET:
            refuse("connect", *_host_port(address))
        return await sock_connect(self, sock, address)

    async def guarded_datagram_endpoint(self, factory, local_addr=None, remote_addr=None, **kw):
        refuse("connect", *_host_port(remote_addr))
        return await create_datagram_endpoint(self, factory, local_addr, remote_addr, **kw)

    async def guarded_getaddrinfo(self, host, *args, **kwargs):
        refuse("lookup of", host, args[0] if args else kwargs.get("port"))
        return await getaddrinfo(self, host, *args, **kwargs)

    loop.create_connection = guarded_create_connection
    loop.sock_connect = guarded_sock_connect
    loop.create_datagram_endpoint = guarded_datagram_endpoint
    loop.getaddrinfo = guarded_getaddrinfo


class _WhenUvloopIsImported(importlib.abc.MetaPathFinder):
    """Guards uvloop's loop as it is imported: importing it here would slow every process."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "uvloop":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            _guard_uvloop(module.Loop)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


_guard_socket()
sys.meta_path.insert(0, _WhenUvloopIsImported())
