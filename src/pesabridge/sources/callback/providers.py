"""The callback source types other than Daraja C2B: one small class each.

Each type fixes its parser, its answers and its signature scheme; everything else (path,
account, allow-list, auth, keys, limits) is the shared :class:`CallbackConfig`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ...config import ComponentConfig
from . import signatures
from .endpoint import Answer, Answers, CallbackConfig, CallbackEndpoint, Provider
from .mtn import MtnMomoConfig, MtnMomoSource

DARAJA_OK: dict[str, object] = {"ResultCode": 0, "ResultDesc": "Success"}


def daraja_rejected(reason: str) -> Answer:
    return (400, {"ResultCode": 1, "ResultDesc": f"Rejected: {reason}"})


def _plain_rejected(_reason: str) -> Answer:
    return (400, None)


DARAJA_ANSWERS = Answers(success=(200, DARAJA_OK), rejected=daraja_rejected)

# -- Daraja M-Pesa Express (STK push) and the async Result envelope ---------------------


class DarajaStkConfig(CallbackConfig):
    """``type: daraja-stk``: the CallBackURL of an STK push (M-Pesa Express) request."""

    type: Literal["daraja-stk"] = "daraja-stk"
    path: str = Field(default="/daraja/stk", pattern=r"^/[A-Za-z0-9/_.-]*$")


class DarajaStkSource(CallbackEndpoint):
    """STK results: ResultCode 0 is a payment; anything else (1032 ...) a failed attempt."""

    Config: ClassVar[type[ComponentConfig]] = DarajaStkConfig
    PROVIDER = Provider("daraja-stk", DARAJA_ANSWERS, summary="M-Pesa Express callback")


class DarajaResultConfig(CallbackConfig):
    """``type: daraja-result``: the ResultURL of B2C, reversal, status and balance calls."""

    type: Literal["daraja-result"] = "daraja-result"
    path: str = Field(default="/daraja/result", pattern=r"^/[A-Za-z0-9/_.-]*$")


class DarajaResultSource(CallbackEndpoint):
    """Daraja's asynchronous Result envelope (B2C payouts, reversals, status, balance)."""

    Config: ClassVar[type[ComponentConfig]] = DarajaResultConfig
    PROVIDER = Provider("daraja-result", DARAJA_ANSWERS, summary="Daraja Result")


# -- Kopo Kopo ------------------------------------------------------------------------


class KopoKopoConfig(CallbackConfig):
    """``type: kopokopo``: K2 Connect webhooks, signed with the application's API key."""

    type: Literal["kopokopo"] = "kopokopo"
    path: str = Field(default="/kopokopo/webhook", pattern=r"^/[A-Za-z0-9/_.-]*$")


class KopoKopoSource(CallbackEndpoint):
    """K2 webhooks; ``X-KopoKopo-Signature`` must verify (no key: every call refused)."""

    Config: ClassVar[type[ComponentConfig]] = KopoKopoConfig
    PROVIDER = Provider(
        "kopokopo-webhook",
        Answers(success=(200, {"status": "ok"}), rejected=_plain_rejected),
        verifier=signatures.verify_k2,
        signature_required=True,
        summary="Kopo Kopo K2 webhook",
    )


LEGACY_OK = {"status": "01", "description": "Accepted"}
LEGACY_REFUSED = {"status": "03", "description": "Rejected"}


class KopoKopoLegacyConfig(CallbackConfig):
    """``type: kopokopo-legacy``: the 2012-2017 Kopo Kopo push API (form or JSON)."""

    type: Literal["kopokopo-legacy"] = "kopokopo-legacy"
    path: str = Field(default="/kopokopo/legacy", pattern=r"^/[A-Za-z0-9/_.-]*$")


class KopoKopoLegacySource(CallbackEndpoint):
    """Legacy notifications: ``signature`` (HMAC-SHA1, Base64) must verify."""

    Config: ClassVar[type[ComponentConfig]] = KopoKopoLegacyConfig
    PROVIDER = Provider(
        "kopokopo-legacy",
        Answers(
            success=(200, LEGACY_OK),
            rejected=lambda _reason: (400, LEGACY_REFUSED),
            bad_signature=(401, LEGACY_REFUSED),
        ),
        verifier=signatures.verify_legacy,
        signature_required=True,
        summary="Kopo Kopo legacy notification",
        content_types=("application/x-www-form-urlencoded", "application/json"),
    )


# -- Airtel and MTN -------------------------------------------------------------------

AIRTEL_OK = {"status": {"code": "200", "message": "SUCCESS", "success": True}}


class AirtelConfig(CallbackConfig):
    """``type: airtel``: Airtel Money collection callbacks (``hash`` checked when keyed)."""

    type: Literal["airtel"] = "airtel"
    path: str = Field(default="/airtel/callback", pattern=r"^/[A-Za-z0-9/_.-]*$")


class AirtelSource(CallbackEndpoint):
    """Airtel: ``TS`` is a payment, ``TF`` a failed attempt."""

    Config: ClassVar[type[ComponentConfig]] = AirtelConfig
    PROVIDER = Provider(
        "airtel-callback",
        Answers(success=(200, AIRTEL_OK), rejected=_plain_rejected),
        verifier=signatures.verify_airtel,
        summary="Airtel Money callback",
    )


# MTN MoMo lives in .mtn (its callbacks can be confirmed with MTN's status endpoint).
__all__ = [
    "AirtelSource",
    "DarajaResultSource",
    "DarajaStkSource",
    "KopoKopoLegacySource",
    "KopoKopoSource",
    "MtnMomoConfig",
    "MtnMomoSource",
]
