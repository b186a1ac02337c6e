"""Message types and the keys that pair a response with its request.

An MTI is version, class, function and origin: ``0200`` is a 1987 financial request
from the acquirer, ``0221`` the repeat of an advice, ``0430`` a reversal response. A
response's function is one more than its request's, and a repeat (origin 1) is answered
as the original would be. Requests and responses are paired on (response class, STAN,
RRN): STANs are unique per sink per day, and the RRN guards against a host that echoes
the wrong message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

_REPEAT_ORIGIN = {"1": "0", "3": "2", "5": "4"}

SIGN_ON = "001"
ECHO = "301"
"""Field 70 network management information codes (1987)."""
SIGN_ON_1993 = "801"
ECHO_1993 = "831"
"""Field 24 function codes of a 1804 network management message (1993)."""


def response_mti(mti: str) -> str:
    """0200 → 0210, 0220/0221 → 0230, 0420/0421 → 0430, 0800 → 0810, 1804 → 1814."""
    return mti[:2] + str(int(mti[2]) + 1) + _REPEAT_ORIGIN.get(mti[3], mti[3])


def repeat_mti(mti: str) -> str:
    """The repeat of an advice or reversal: 0220 → 0221, 0420 → 0421, 1220 → 1221."""
    return mti[:3] + "1"


def key_of(mti: str, stan: str, rrn: str) -> tuple[str, str, str]:
    """What a response is matched on: (version+class+function, STAN, RRN unpadded)."""
    return (mti[:3], stan, rrn.strip())


def request_key(fields: Mapping[str, Any]) -> tuple[str, str, str]:
    """The key the response to ``fields`` will have."""
    return key_of(
        response_mti(str(fields["t"])), str(fields.get("11", "")), str(fields.get("37", ""))
    )


def response_key(fields: Mapping[str, Any]) -> tuple[str, str, str]:
    """The key of a received response."""
    return key_of(str(fields["t"]), str(fields.get("11", "")), str(fields.get("37", "")))


def transmission_time(now: datetime) -> str:
    """Field 7: MMDDhhmmss, in UTC (GMT, as ISO 8583 defines it)."""
    return f"{now:%m%d%H%M%S}"


def network_message(version: int, kind: str, stan: int, now: datetime) -> dict[str, str]:
    """A sign-on or echo test (``kind`` is ``sign-on`` or ``echo``): 0800 with field 70
    in 1987, 1804 with function code 24 in 1993."""
    if version == 1993:
        code = SIGN_ON_1993 if kind == "sign-on" else ECHO_1993
        return {"t": "1804", "7": transmission_time(now), "11": f"{stan:06}", "24": code}
    code = SIGN_ON if kind == "sign-on" else ECHO
    return {"t": "0800", "7": transmission_time(now), "11": f"{stan:06}", "70": code}
