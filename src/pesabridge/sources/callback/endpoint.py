"""One configurable callback endpoint, parameterised by format, answers and security.

Every provider callback goes through the same chain, in this order, and stops at the
first refusal:

1. the path token (403), the caller's address against the allow-list (403), HTTP basic
   auth (401), the declared and the actual body size (413): refusals carry no detail,
   are counted in ``pesabridge_callbacks_refused_total`` and logged without the payload;
2. the provider's signature, where it signs (401, or the provider's own refusal body);
3. the parser (``formats.get_parser(format).parse_body``): a body it cannot read is
   answered 400 with the provider's rejection body and kept in quarantine (the rejects
   table, ``quarantine_max_bytes`` of it);
4. the ledger: transactions (the account filled in from the config when the payload has
   none), their evidence and outbox rows, and failed attempts, committed by the group
   committer; only then is the provider's success body sent. A retried callback (same
   receipt) is answered the same and stored once. A well-formed body that reports no
   money moving (an account-balance Result) is acknowledged and nothing is recorded.

The chain runs on Starlette's :class:`~starlette.requests.Request` either way: behind
Starlette's router, or straight from the server (:meth:`CallbackEndpoint.asgi`, the
fast path :mod:`pesabridge.server.fastpath` takes for the exact callback URLs), which
skips the router and middleware but none of the steps above.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import structlog
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from ...config import ComponentConfig
from ...formats import get_parser
from ...formats.base import FailedAttempt, Observation, ParseItem, Reject
from ...metrics import CALLBACKS, FAILED_ATTEMPTS, RECORDED, REFUSED, REJECTED
from ...store import RecordResult, Sighting, utcnow
from ...store import files as file_ledger
from ...store.group import GroupCommitter
from ..base import SourceContext
from . import security
from .answers import Answer, Answers, Refused, asgi_messages, respond, respond_cached
from .config import CallbackConfig, Provider
from .recording import fill_account, record_grouped, record_with_failures
from .signatures import Verdict

# The vocabulary lives in .answers and .config; importable from here as before.
__all__ = [
    "Answer",
    "Answers",
    "CallbackConfig",
    "CallbackEndpoint",
    "Provider",
    "Refused",
    "respond",
]

log = structlog.get_logger("pesabridge.sources.callback")


_INFO: dict[Any, bool] = {}


def _info_enabled() -> bool:
    """Whether an info line would be written: building one per callback is not free."""
    wrapper = structlog.get_config()["wrapper_class"]
    enabled = _INFO.get(wrapper)
    if enabled is None:  # once per logging configuration
        logger: Any = structlog.get_logger("pesabridge.sources.callback").bind()
        check = getattr(logger, "is_enabled_for", None)
        enabled = _INFO[wrapper] = True if check is None else bool(check(logging.INFO))
    return enabled


class CallbackEndpoint:
    """A callback source: one URL (``path``), answered per its :class:`Provider`."""

    Config: ClassVar[type[ComponentConfig]] = CallbackConfig
    PROVIDER: ClassVar[Provider]

    def __init__(self, config: CallbackConfig, context: SourceContext) -> None:
        self.config = config
        self.name = config.name
        self.context = context
        self.provider = self.PROVIDER
        self._route = context.routing.router_for(self.name)
        self._sighting = Sighting(kind="callback", origin="callback")
        self._allow = None if config.allow_ips is None else security.networks(config.allow_ips)
        self._proxies = security.networks(config.trusted_proxies)
        self._keys = [k.get_secret_value().encode() for k in config.signing_keys]
        self._parser: Any = get_parser(self.provider.format)
        self._committer = context.committer or GroupCommitter(context.store)
        # Request ids need only be unique: a per-process random prefix and a counter
        # (uuid4 reads the OS's random source for every request).
        prefix = secrets.token_hex(4)
        self._ids = (f"{prefix}{n:x}" for n in itertools.count())
        answers = self.provider.answers
        self._success = respond_cached(answers.success)
        self._duplicate = (
            self._success if answers.duplicate is None else respond_cached(answers.duplicate)
        )
        self._recorded = {
            outcome: RECORDED.labels(self.name, outcome)
            for outcome in ("new", "known", "conflicting")
        }
        self._confirmed = CALLBACKS.labels(self.name, "confirmed")
        # The fast path (asgi): which checks need more than the raw scope, and the
        # cached answers as ready ASGI messages (uvicorn only reads them).
        self._lean = type(self).handle is CallbackEndpoint.handle
        self._guarded = self._allow is not None or config.basic_auth is not None
        self._signed = self.provider.verifier is not None and (
            bool(self._keys) or self.provider.signature_required
        )
        self._success_messages = asgi_messages(self._success)
        self._duplicate_messages = asgi_messages(self._duplicate)
        if self._allow is None:
            log.info("callback source open to every address", source=self.name)

    # -- routes -------------------------------------------------------------------------

    def url(self, suffix: str = "") -> str:
        """The route path (``{token}`` standing for the path token when configured)."""
        base = self.config.path.rstrip("/")
        token = "/{token}" if self.config.path_token is not None else ""
        return f"{base}{token}{suffix}" or "/"

    def routes(self) -> Sequence[BaseRoute]:
        return [Route(self.url(), self.handle, methods=["POST"])]

    def fast_routes(self) -> dict[tuple[str, str], Callable[[Scope, Receive, Send], Any]]:
        """``(method, exact path)`` of each route answered by :meth:`handle`, to :meth:`asgi`.

        The server looks requests up here before Starlette's router (see
        :mod:`pesabridge.server.fastpath`). A request with a wrong path token is not
        here and goes the ordinary way, to be refused and counted.
        """
        token = self.config.path_token
        table: dict[tuple[str, str], Callable[[Scope, Receive, Send], Any]] = {}
        for route in self.routes():
            if not isinstance(route, Route) or route.endpoint != self.handle:
                continue
            path = route.path
            if token is not None:
                path = path.replace("{token}", token.get_secret_value())
            for method in route.methods or ():
                if method != "HEAD":
                    table[(method, path)] = self.asgi
        return table

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The callback chain as a bare ASGI app (the path already matched exactly).

        A source that keeps the generic :meth:`handle` runs the chain straight on the
        ASGI scope: one pass over the raw headers for the few it reads, the body from
        the ASGI messages, and the cached answers sent as prepared messages. Starlette's
        :class:`Request` is built only for the checks that read it (allow-list, basic
        auth); the steps and their order are :meth:`handle`'s.
        """
        if not self._lean:
            if self.config.path_token is not None:
                scope["path_params"] = {"token": self.config.path_token.get_secret_value()}
            response = await self.handle(Request(scope, receive))
            await response(scope, receive, send)
            return
        declared = content_type = request_id = None
        for name, value in scope["headers"]:  # the first of each, as Starlette reads them
            if name == b"content-length":
                declared = value if declared is None else declared
            elif name == b"content-type":
                content_type = value if content_type is None else content_type
            elif name == b"x-request-id":
                request_id = value if request_id is None else request_id
        try:
            if self._guarded:
                if self.config.path_token is not None:
                    scope["path_params"] = {"token": self.config.path_token.get_secret_value()}
                self._check_caller(Request(scope, receive))
            body = await self._read_body(
                receive, None if declared is None else declared.decode("latin-1"), scope
            )
            if self._signed:
                self._check_signature(body, Headers(scope=scope), scope)
        except Refused as refused:
            await respond(refused.answer, refused.headers)(scope, receive, send)
            return
        name = request_id.decode("latin-1") if request_id else next(self._ids)
        source = f"{self.name}:{name[:100]}"
        items = self.parse(
            body, source, None if content_type is None else content_type.decode("latin-1")
        )
        response = await self.accept(items, body, source)
        if response is self._success:
            prepared = self._success_messages
        elif response is self._duplicate:
            prepared = self._duplicate_messages
        else:
            await response(scope, receive, send)
            return
        await send(prepared[0])
        await send(prepared[1])

    def openapi(self) -> dict[str, Any]:
        """This source's OpenAPI ``paths`` entries."""
        return {self.url(): {"post": self._operation(self.provider.summary or self.name)}}

    def _operation(self, summary: str, answers: Sequence[Answer] = ()) -> dict[str, Any]:
        parameters = []
        if self.config.path_token is not None:
            parameters.append(
                {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
            )
        content = {ct: {"schema": {"type": "object"}} for ct in self.provider.content_types}
        responses: dict[str, Any] = {
            "200": {"description": "Recorded (or already recorded)"},
            "400": {"description": "Unreadable body: kept in quarantine"},
            "401": {"description": "Missing or bad credentials or signature"},
            "403": {"description": "Address not allowed, or wrong path token"},
            "413": {"description": "Body larger than max_body"},
        }
        for status, _ in answers:
            responses.setdefault(str(status), {"description": "Answered"})
        return {
            "summary": summary,
            "operationId": f"{self.name}{summary.replace(' ', '_')}",
            "parameters": parameters,
            "requestBody": {"required": True, "content": content},
            "responses": responses,
        }

    async def aclose(self) -> None:
        """Release what the source holds (HTTP sessions); the runtime calls it on stop."""

    # -- the chain ----------------------------------------------------------------------

    def _refuse(self, reason: str, answer: Answer, scope: Scope, **headers: str) -> Refused:
        REFUSED.labels(self.name, reason).inc()
        CALLBACKS.labels(self.name, f"refused-{reason}").inc()
        client = scope.get("client")
        peer = client[0] if client else None
        log.warning("callback refused", source=self.name, reason=reason, peer=peer)
        return Refused(reason, answer, headers)

    def _check_caller(self, request: Request) -> None:
        config = self.config
        if config.path_token is not None:
            given = str(request.path_params.get("token", ""))
            if not security.same(given, config.path_token.get_secret_value()):
                raise self._refuse("token", (403, None), request.scope)
        if self._allow is not None and not security.allowed(
            security.client_address(request, self._proxies), self._allow
        ):
            raise self._refuse("ip", (403, None), request.scope)
        if config.basic_auth is not None:
            given_pair = security.basic_credentials(request) or ("", "")
            user_ok = security.same(given_pair[0], config.basic_auth.username)
            pass_ok = security.same(given_pair[1], config.basic_auth.password.get_secret_value())
            if not (user_ok and pass_ok):
                challenge = f'Basic realm="{self.name}"'
                raise self._refuse(
                    "auth", (401, None), request.scope, **{"WWW-Authenticate": challenge}
                )

    async def _read_body(self, receive: Receive, declared: str | None, scope: Scope) -> bytes:
        """The body, refused (413) when its declared or actual size passes ``max_body``."""
        limit = self.config.max_body
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise self._refuse("size", (413, None), scope)
        # The ASGI messages themselves rather than request.stream(): a callback body
        # is read once, almost always in one message.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Refused("disconnected", (400, None))
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._refuse("size", (413, None), scope)
            if not message.get("more_body", False):
                if not chunks:
                    return chunk
                chunks.append(chunk)
                return b"".join(chunks)
            chunks.append(chunk)

    def _check_signature(self, body: bytes, headers: Mapping[str, str], scope: Scope) -> None:
        verifier = self.provider.verifier
        if verifier is None or (not self._keys and not self.provider.signature_required):
            return
        if not self._keys:  # signed by the provider, but no key to check it with
            raise self._refuse("signature", self.provider.answers.bad_signature, scope)
        verdict = verifier(body, headers, self._keys)
        if verdict is not Verdict.GOOD:
            raise self._refuse("signature", self.provider.answers.bad_signature, scope)

    async def receive(self, request: Request) -> tuple[bytes, str]:
        """The body of an admitted request, and the name its evidence is kept under."""
        self._check_caller(request)
        body = await self._read_body(
            request.receive, request.headers.get("content-length"), request.scope
        )
        self._check_signature(body, request.headers, request.scope)
        request_id = request.headers.get("x-request-id") or next(self._ids)
        return body, f"{self.name}:{request_id[:100]}"

    def parse(self, body: bytes, source: str, content_type: str | None) -> list[ParseItem]:
        parse_body = getattr(self._parser, "parse_body", None)
        if parse_body is not None:
            items: list[ParseItem] = parse_body(body, source, content_type)
            return items
        return list(self._parser.parse(io.BytesIO(body), source))

    async def handle(self, request: Request) -> Response:
        try:
            body, source = await self.receive(request)
        except Refused as refused:
            return respond(refused.answer, refused.headers)
        items = self.parse(body, source, request.headers.get("content-type"))
        return await self.accept(items, body, source)

    async def accept(self, items: Sequence[ParseItem], body: bytes, source: str) -> Response:
        """Record what a body held, or quarantine it; the provider's answer."""
        answers = self.provider.answers
        rejects = [item for item in items if isinstance(item, Reject)]
        account = self.config.account  # filled in where the payload has none
        observations = [
            fill_account(item, account) for item in items if isinstance(item, Observation)
        ]
        failures = [item for item in items if isinstance(item, FailedAttempt)]
        if rejects:
            await self.quarantine(rejects)
            CALLBACKS.labels(self.name, "rejected").inc()
            return respond(answers.rejected(str(rejects[0])))
        if not observations and not failures:
            # a well-formed report of no money moving (a balance or status query result)
            CALLBACKS.labels(self.name, "nothing").inc()
            log.info("callback with nothing to record", source=self.name, request=source)
            return self._success
        if failures:
            result, failed_new = await self._committer.submit(
                lambda conn: self._record(conn, observations, failures)
            )
            FAILED_ATTEMPTS.labels(self.name).inc(failed_new)
        else:
            # the common case, merged with the other callbacks of the group commit
            result = await self._committer.submit_bulk(self._record_many, observations)
            failed_new = 0
        if observations:
            outcome = "new" if result.new else ("conflicting" if result.conflicting else "known")
            self._recorded[outcome].inc(len(observations))
        duplicate = not result.new and not failed_new
        self._confirmed.inc()
        if _info_enabled():
            log.info(
                "callback recorded",
                source=self.name,
                new=result.new,
                known=result.known,
                conflicting=result.conflicting,
                failed_attempts=len(failures),
                transactions=[obs.transaction.describe() for obs in observations],
            )
        return self._duplicate if duplicate else self._success

    def _record_many(
        self, conn: Any, payloads: Sequence[Sequence[Observation]]
    ) -> list[RecordResult]:
        """The batch's callbacks of this source in one call (:func:`record_grouped`).

        A bound method, so that the group committer merges this source's callbacks.
        """
        return record_grouped(conn, payloads, self._sighting, self._route, self.name)

    def _record(
        self, conn: Any, observations: list[Observation], failures: list[FailedAttempt]
    ) -> tuple[RecordResult, int]:
        return record_with_failures(
            conn,
            observations,
            failures,
            self._sighting,
            self._route,
            source=self.name,
            account=self.config.account,
        )

    async def quarantine(self, rejects: Sequence[Reject]) -> None:
        """Keep unreadable bodies (capped) in the rejects table, with their reason."""
        cap = self.config.quarantine_max_bytes
        capped = [dataclasses.replace(r, raw=r.raw[:cap]) for r in rejects]
        REJECTED.labels(self.name).inc(len(capped))
        log.warning("callback rejected", source=self.name, reason=str(capped[0]))
        now = utcnow()
        await self._committer.submit(lambda conn: file_ledger.add_rejects(conn, capped, None, now))
