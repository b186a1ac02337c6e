"""Encoder options: validated by a pydantic model per encoder, problems named by path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class EncoderOptionsError(ConfigError, ValueError):
    """Options an encoder refuses; each problem reads ``options.path: message``."""


def validate_options(model: type[M], options: Mapping[str, Any], *, where: str = "options") -> M:
    """``options`` validated by ``model``, or :class:`EncoderOptionsError` listing problems."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        from ..config import validation_problems  # only on the error path

        raise EncoderOptionsError(validation_problems(exc, where)) from None


def problem(message: str, *, where: str = "options") -> EncoderOptionsError:
    """One option problem as an error to raise."""
    return EncoderOptionsError([f"{where}: {message}"])
