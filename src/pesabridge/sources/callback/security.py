"""Who may call a callback URL: body size, IP allow-list, path token, basic auth.

Daraja and MTN do not sign their callbacks, so a callback URL is protected by what the
caller cannot guess or forge from outside: an unguessable token in the path, HTTP basic
auth, and the provider's published addresses. ``X-Forwarded-For`` is believed only when
the direct peer is one of the configured trusted proxies, and then the client is the
rightmost address that is not itself a trusted proxy.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Iterable, Sequence

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Safaricom's documented Daraja callback source addresses (the "whitelist these IPs" list
# in the Daraja go-live notes). An editable default: write ``"@safaricom"`` in
# ``allow_ips`` to include them, and list further ranges beside it as Safaricom adds some.
SAFARICOM_IPS: tuple[str, ...] = (
    "196.201.214.200/32",
    "196.201.214.206/32",
    "196.201.213.114/32",
    "196.201.214.207/32",
    "196.201.214.208/32",
    "196.201.213.44/32",
    "196.201.212.127/32",
    "196.201.212.138/32",
    "196.201.212.129/32",
    "196.201.212.136/32",
    "196.201.212.74/32",
    "196.201.212.69/32",
)
PRESETS: dict[str, tuple[str, ...]] = {"@safaricom": SAFARICOM_IPS}


def networks(entries: Iterable[str]) -> list[Network]:
    """CIDR ranges (a bare address is a /32 or /128); ``@safaricom`` expands to its list."""
    result: list[Network] = []
    for entry in entries:
        text = entry.strip()
        if text.startswith("@"):
            if text not in PRESETS:
                raise ValueError(f"unknown address list {text!r}; known: {', '.join(PRESETS)}")
            result.extend(ipaddress.ip_network(n) for n in PRESETS[text])
            continue
        try:
            result.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR range") from None
    return result


def _address(text: str | None) -> Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _within(address: Address, ranges: Sequence[Network]) -> bool:
    return any(address in network for network in ranges)


def client_address(request: Request, trusted_proxies: Sequence[Network]) -> Address | None:
    """The caller's address: the peer, or, behind a trusted proxy, from X-Forwarded-For."""
    peer = _address(request.client.host if request.client else None)
    if peer is None or not trusted_proxies or not _within(peer, trusted_proxies):
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return None  # a garbled chain is not believed
        if not _within(address, trusted_proxies):
            return address
    return peer if not hops else _address(hops[0])


def allowed(address: Address | None, allow: Sequence[Network] | None) -> bool:
    """Whether the caller may call; ``allow=None`` lets everyone through."""
    if allow is None:
        return True
    return address is not None and _within(address, allow)


def same(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time comparison of two secrets (or a signature and its expected value)."""
    a = given.encode() if isinstance(given, str) else given
    b = expected.encode() if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """The user name and password of an ``Authorization: Basic`` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None
