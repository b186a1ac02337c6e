"""ISO 8583 on pyiso8583: the encoder, spec variants as YAML, and a field-by-field decoder."""

from .encoder import (
    DEFAULT_PROCESSING_CODES,
    InMemoryStanAllocator,
    Iso8583Encoder,
    Iso8583Options,
    OriginalMessage,
    StanAllocator,
)
from .specs import DEFAULT_SPEC, Iso8583Spec, builtin_spec_names, load_spec

__all__ = [
    "DEFAULT_PROCESSING_CODES",
    "DEFAULT_SPEC",
    "InMemoryStanAllocator",
    "Iso8583Encoder",
    "Iso8583Options",
    "Iso8583Spec",
    "OriginalMessage",
    "StanAllocator",
    "builtin_spec_names",
    "load_spec",
]
