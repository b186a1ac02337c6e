"""Provider callbacks: one configurable endpoint, parameterised by format and provider."""

from .endpoint import Answers, CallbackConfig, CallbackEndpoint, Provider

__all__ = ["Answers", "CallbackConfig", "CallbackEndpoint", "Provider"]
