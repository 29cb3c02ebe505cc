"""Which address `tmath web` binds and which Host headers it answers: no third-party imports, so the CLI checks
its arguments before it needs fastapi or uvicorn.

A browser visiting any web site can be made to send requests to 127.0.0.1:8000 under a name the site controls
(DNS rebinding); the Host header is then that name. Answering only names of this machine closes that door.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from transformer_math.errors import TmathError

LOOPBACK_NAMES = frozenset({"localhost"})
WILDCARDS = frozenset({"0.0.0.0", "::"})
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_hostname(text: str) -> bool:
    """An IP literal or a DNS name (RFC 1123 labels): what `--host` and a Host header may name."""
    text = text.lower()
    if _ip(text) is not None:
        return True
    return 0 < len(text) <= 253 and all(_LABEL.match(label) for label in text.split("."))


def is_loopback(host: str) -> bool:
    ip = _ip(host)
    return host.lower() in LOOPBACK_NAMES if ip is None else ip.is_loopback


def check_bind(host: str, port: int) -> None:
    """`tmath web --host/--port`: a bad value is a one-line error, not uvicorn's OverflowError traceback."""
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise TmathError("port", port, "an integer from 1 to 65535")
    if not is_hostname(host):
        raise TmathError("host", host, "an IP address (127.0.0.1, ::1, 0.0.0.0) or a host name of this machine")


def exposure_warning(host: str) -> str | None:
    """What to print when the app becomes reachable from other machines (it has no authentication)."""
    if is_loopback(host):
        return None
    who = "every network this machine is on" if host in WILDCARDS else f"whoever can reach {host}"
    return (f"tmath: warning: --host {host} serves the calculator to {who}, without authentication; "
            "the default 127.0.0.1 keeps it on this machine")


def allowed_hosts(bind: str | None) -> frozenset[str]:
    """The Host names answered besides loopback ones: the bind address, and for a wildcard this machine's name."""
    if bind is None or is_loopback(bind):
        return frozenset()
    if bind in WILDCARDS:
        return frozenset({socket.gethostname().lower()})
    return frozenset({bind.lower().strip("[]")})


def host_ok(header: str | None, extra: frozenset[str], any_ip: bool) -> bool:
    """Host header names this machine: localhost, a loopback IP, or one of `extra` (any port).

    `any_ip`: bound to a wildcard, any IP literal is this machine's; an IP literal cannot be rebound by DNS.
    """
    if not header:
        return False
    name, port = _split(header.lower())
    if name is None or (port and not (port.isdigit() and len(port) <= 5)):
        return False
    ip = _ip(name)
    if ip is not None:
        return ip.is_loopback or any_ip or name in extra
    return name in LOOPBACK_NAMES or name in extra


def _split(header: str) -> tuple[str | None, str]:
    """'[::1]:8000' → ('::1', '8000'); 'localhost' → ('localhost', ''); a malformed header → (None, '')."""
    if header.startswith("["):
        name, sep, rest = header[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None, ""
        return (name if _ip(name) is not None and ":" in name else None), rest[1:]
    name, _, port = header.partition(":")
    if ":" in port:  # a bare IPv6 address: not a valid Host header
        return None, ""
    return name, port
