"""Encoders: canonical transactions into what a back office reads."""

from .json import canonical_json

__all__ = ["canonical_json"]
