"""ISO 8583 on pyiso8583: the encoder, spec variants as YAML, and a field-by-field decoder."""

from .encoder import Iso8583Encoder, OriginalMessage
from .options import DEFAULT_PROCESSING_CODES, Iso8583Options
from .specs import DEFAULT_SPEC, Iso8583Spec, builtin_spec_names, load_spec
from .stan import InMemoryStanAllocator, StanAllocator

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
