"""The one wrapper every function's handler goes through.

It turns a platform event (Yandex Cloud Functions / AWS API Gateway v1, or AWS HTTP API and
Function URL v2) into a `Request`, answers OPTIONS and CORS, checks the method and body size,
turns every exception into a JSON answer through one table (`ERRORS`: exception type -> response,
looked up along the class hierarchy; add an entry with `@exception_handler(SomeError)`), and never
lets an exception escape: an escaped exception becomes the platform's bare 502 without CORS
headers, which a browser reports as a network error.

Handlers parse the request here and call the domain (`shared.view`, `shared.actions`, ...) with
plain values and `request.services`; the domain never imports this module (import-linter checks).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from shared import db, log
from shared.errors import (
    InvalidInput,
    LimitReached,
    ServiceError,
    StorageError,
    TaskNotFound,
    Unauthorized,
    Unavailable,
    WrongState,
)
from shared.events import body_of, headers_of, object_of, query_of
from shared.services import Services
from shared.settings import ConfigError, Settings, load, origin_allowed
from shared.validation import check_text, valid_user_id

# Bodies are trees we build (no cycles to look for): skipping the check saves a status poll time.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, check_circular=False)
# Authorization: for a login gateway in front that turns a session into X-User-Id.
ALLOW_HEADERS = "Content-Type, X-User-Id, X-Cron-Secret, Idempotency-Key, Authorization"


class Response:
    def __init__(self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = {} if headers is None else headers


class Request:
    def __init__(self, event: Any, context: Any, settings: Settings, headers: dict[str, str] | None = None):
        if not isinstance(event, dict):
            raise InvalidInput("The request could not be read.", code="bad_event")
        self.event = event
        self.context = context
        self.settings = settings
        self.started = time.monotonic()
        request_context = object_of(event.get("requestContext"))
        http_v2 = object_of(request_context.get("http"))
        method = event.get("httpMethod") or http_v2.get("method") or request_context.get("httpMethod")
        # No HTTP method at all: invoked directly (a timer trigger, a scheduler) or, on Yandex, over
        # HTTP with ?integration=raw, which hands over the body as the event (shared.auth.require_cron).
        self.direct_invocation = not method
        self.method = str(method or "GET").upper()
        self.headers = headers_of(event) if headers is None else headers
        self.query = query_of(event)
        self.raw_body = body_of(event)
        self.request_id = str(
            request_context.get("requestId")
            or getattr(context, "request_id", None)
            or getattr(context, "aws_request_id", None)
            or _new_request_id()
        )
        self.services = Services(settings)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> dict[str, Any]:
        # A byte-order mark some clients (.NET, PowerShell) put first: JSON parsers may ignore it (RFC 8259).
        text = self.raw_body.removeprefix("\ufeff")
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise InvalidInput("The request body is not valid JSON.", code="invalid_json") from None
        if not isinstance(data, dict):
            raise InvalidInput("The request body must be a JSON object.", code="invalid_json")
        check_text(data)
        return data

    @property
    def user_id(self) -> str | None:
        """The user named by the X-User-Id header, if any (validated)."""
        value = self.header("X-User-Id")
        if value is None or value.strip() == "":
            return None
        return valid_user_id(value.strip())

    def remaining_seconds(self, budget: float, reserve: float = 0.0) -> float:
        """Seconds left of our own `budget`, also bounded by the platform's remaining time less
        `reserve` (what a call started now may still need) and two seconds to answer."""
        left = budget - (time.monotonic() - self.started)
        get_remaining = getattr(self.context, "get_remaining_time_in_millis", None)
        if callable(get_remaining):
            try:
                left = min(left, get_remaining() / 1000.0 - 2.0 - reserve)
            except Exception:  # a context we do not know: our own budget still applies
                pass
        return left


def _new_request_id() -> str:
    import uuid  # rarely needed (platforms send a request id) and slow to import (it loads platform)

    return str(uuid.uuid4())


def cors_headers(origins: tuple[str, ...], request_origin: str | None) -> dict[str, str]:
    if "*" in origins:
        return {"Access-Control-Allow-Origin": "*"}
    if request_origin and origin_allowed(origins, request_origin):
        # A listed origin may send its cookies (a login gateway's session); browsers never allow
        # credentials with "*".
        return {"Access-Control-Allow-Origin": request_origin, "Access-Control-Allow-Credentials": "true",
                "Vary": "Origin"}
    # Not an allowed origin: no grant, the browser blocks the response.
    return {"Vary": "Origin"}


# Every answer's headers, before CORS and the response's own.
_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "Cache-Control": "no-store",
    "Access-Control-Expose-Headers": "Retry-After",
}


def to_event_response(response: Response, cors: dict[str, str]) -> dict[str, Any]:
    headers = {**_HEADERS, **cors}
    if response.headers:
        headers.update(response.headers)
    return {
        "statusCode": response.status,
        "headers": headers,
        "body": _ENCODER.encode(response.body),
        "isBase64Encoded": False,
    }


def endpoint(*methods: str, name: str) -> Callable[[Callable[[Request], Any]], Callable[..., dict[str, Any]]]:
    """Makes `fn(request) -> dict | Response` into a platform `handler(event, context)`. HEAD is
    answered wherever GET is, as GET without the body (uptime monitors ping with HEAD)."""
    declared = tuple(m.upper() for m in methods)
    allowed = (*declared, "HEAD") if "GET" in declared else declared

    def wrap(fn: Callable[[Request], Any]) -> Callable[..., dict[str, Any]]:
        def handler(event: Any, context: Any = None) -> dict[str, Any]:
            log.reset(function=name)
            origins: tuple[str, ...] = ("*",)
            request_origin = None
            head = False
            started = time.monotonic()
            try:
                headers = headers_of(event) if isinstance(event, dict) else {}
                request_origin = headers.get("origin")
                settings = load()
                origins = settings.allowed_origins
                request = Request(event, context, settings, headers)
                log.bind(request_id=request.request_id)
                head = request.method == "HEAD"  # whatever the answer, it goes without a body
                if request.method == "OPTIONS":
                    response = Response(200, {"ok": True}, {
                        "Access-Control-Allow-Methods": ", ".join((*allowed, "OPTIONS")),
                        "Access-Control-Allow-Headers": ALLOW_HEADERS,
                        "Access-Control-Max-Age": "86400",
                    })
                elif request.method not in allowed:
                    raise MethodNotAllowed(f"Use {' or '.join(declared)} for this endpoint.", allowed=list(allowed))
                elif request.raw_body and len(request.raw_body) > settings.max_body_bytes:
                    from shared.images import megabytes  # only this answer needs shared.images

                    raise PayloadTooLarge(
                        f"The request is larger than {megabytes(settings.max_body_bytes)}. "
                        "Send smaller images or image URLs."
                    )
                else:
                    if head:
                        request.method = "GET"
                    result = fn(request)
                    response = result if isinstance(result, Response) else Response(200, result)
            except Exception as error:  # the one place that catches everything: ERRORS decides
                response = error_response(error)
            log.invocation(response.status, (time.monotonic() - started) * 1000)
            answer = to_event_response(response, cors_headers(origins, request_origin))
            if head:
                answer["body"] = ""
            return answer

        handler.__name__ = "handler"
        handler.endpoint_name = name  # type: ignore[attr-defined]
        return handler

    return wrap


# --- errors -> responses: one table, looked up along the exception's class hierarchy ----------------

class MethodNotAllowed(ServiceError):
    code = "method_not_allowed"


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"


ERRORS: dict[type[BaseException], Callable[[Any], Response]] = {}


def exception_handler(*types: type[BaseException]) -> Callable[[Callable[[Any], Response]], Callable[[Any], Response]]:
    """Registers `fn(error) -> Response` for `types` and their subclasses."""

    def register(fn: Callable[[Any], Response]) -> Callable[[Any], Response]:
        for error_type in types:
            ERRORS[error_type] = fn
        return fn

    return register


def answer(status: int, error: ServiceError) -> Response:
    headers = {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}
    return Response(status, error.body(), headers)


def _answer_with(status: int) -> Callable[[ServiceError], Response]:
    return lambda error: answer(status, error)


ERRORS.update({
    InvalidInput: _answer_with(400),
    Unauthorized: _answer_with(401),
    TaskNotFound: _answer_with(404),
    WrongState: _answer_with(409),
    PayloadTooLarge: _answer_with(413),
    LimitReached: _answer_with(429),
    Unavailable: _answer_with(503),
})


@exception_handler(MethodNotAllowed)
def _method_not_allowed(error: MethodNotAllowed) -> Response:
    response = answer(405, error)
    response.headers["Allow"] = ", ".join([*error.extra["allowed"], "OPTIONS"])
    return response


@exception_handler(*db.UNAVAILABLE)
def _database_unavailable(error: Exception) -> Response:
    # A lock or statement wait that ran out is load (a burst of starts), not an outage: said apart.
    log.event("database_busy" if isinstance(error, db.TIMED_OUT) else "database_unavailable",
              error=type(error).__name__, pgcode=getattr(error, "pgcode", None),
              detail=db.describe(error, load().database_url))
    return answer(503, Unavailable("The database is unavailable right now. Please try again in a few seconds.",
                                   code="database_unavailable", retry_after=5))


@exception_handler(StorageError)
def _storage_unavailable(error: StorageError) -> Response:
    log.event("storage_unavailable", error=str(error))
    return answer(503, Unavailable("Image storage is unavailable right now. Please try again in a minute.",
                                   code="storage_unavailable", retry_after=30))


@exception_handler(ConfigError)
def _not_configured(error: ConfigError) -> Response:
    log.event("config_error", error=str(error))
    return answer(503, Unavailable("The service is not configured correctly. The operator has been notified.",
                                   code="not_configured", retry_after=60))


def error_response(error: Exception) -> Response:
    for error_type in type(error).__mro__:
        if error_type in ERRORS:
            return ERRORS[error_type](error)
    # Anything else is a bug: log it with a short trace, never leak it.
    import traceback  # only on this path: a status poll should not pay for importing it

    log.event("unhandled_error", error=type(error).__name__, trace=traceback.format_exc(limit=8)[-2000:])
    return answer(500, ServiceError())
