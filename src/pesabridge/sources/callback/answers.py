"""What a callback endpoint answers: the provider's answers, refusals, prepared responses.

An :data:`Answer` is an HTTP status and a JSON body; :class:`Answers` are the ones a
provider expects (success, rejection, bad signature, duplicate). The common answers are
built once (:func:`respond_cached`) and, for the fast ASGI path, kept as ready messages
(:func:`asgi_messages`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import Message

Answer = tuple[int, Mapping[str, Any] | None]
"""An HTTP status and a JSON body (``None``: an empty body)."""


@dataclass(frozen=True, slots=True)
class Answers:
    """What a provider expects to hear back."""

    success: Answer
    rejected: Callable[[str], Answer]
    """A body that could not be read; given the reason."""
    bad_signature: Answer = (401, None)
    duplicate: Answer | None = None
    """A retried callback already stored; ``None``: the success answer."""


class Refused(Exception):
    """A request turned away before parsing; ``reason`` is for metrics and logs only."""

    def __init__(self, reason: str, answer: Answer, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.answer = answer
        self.headers = headers or {}


def respond(answer: Answer, headers: Mapping[str, str] | None = None) -> Response:
    status, body = answer
    if body is None:
        return Response(status_code=status, headers=dict(headers or {}))
    return JSONResponse(dict(body), status, headers=dict(headers or {}))


_ANSWERED: dict[tuple[int, bytes], Response] = {}


def respond_cached(answer: Answer) -> Response:
    """``respond(answer)`` built once: a header-less answer's bytes never change.

    A :class:`Response` holds no per-request state, so one object can answer any
    number of requests; building and encoding it is a fair share of an
    acknowledgement's cost.
    """
    status, body = answer
    key = (status, b"" if body is None else bytes(JSONResponse(dict(body)).body))
    cached = _ANSWERED.get(key)
    if cached is None:
        cached = _ANSWERED[key] = respond(answer)
    return cached


def asgi_messages(response: Response) -> tuple[Message, Message]:
    """The two ASGI messages that send ``response`` (a cached, header-complete answer)."""
    start: Message = {
        "type": "http.response.start",
        "status": response.status_code,
        "headers": response.raw_headers,
    }
    return start, {"type": "http.response.body", "body": bytes(response.body)}
