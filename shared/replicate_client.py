"""The `replicate` client and httpx, imported only by the paths that make a Replicate call
(`shared.replicate_api` imports this module on its first call): one shared client per token,
base URL and timeout, its transport that never retries in a sleep loop, and the client's
errors turned into ours."""

from __future__ import annotations

import threading

import httpx
import replicate
from replicate.exceptions import ReplicateError as ReplicateError

from shared.replicate_errors import PredictionGone, Rejected, Transient, parse_retry_after


class FailFastTransport(httpx.HTTPTransport):
    """Turns the answers the client would retry in a sleep loop into an immediate `Transient`."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if response.status_code in (429, 503, 504):
            response.read()
            response.close()
            raise Transient(
                f"Replicate answered {response.status_code}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                status=response.status_code,
            )
        return response


_clients: dict[tuple[str, str, float], replicate.Client] = {}
_clients_lock = threading.Lock()


def client(token: str, base_url: str, timeout: float) -> replicate.Client:
    key = (token, base_url, timeout)
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = replicate.Client(
                api_token=token,
                base_url=base_url or None,
                timeout=httpx.Timeout(timeout, connect=5.0, pool=5.0),
                transport=FailFastTransport(retries=0),
            )
        return found


def classify(error: ReplicateError) -> Exception:
    status = error.status or 0
    detail = (error.detail or error.title or "").strip()
    if status == 429 or status >= 500:
        return Transient(f"Replicate answered {status}", status=status)
    if status == 404:
        return PredictionGone("Replicate no longer has this prediction.", status=status)
    if status in (401, 403):
        return Rejected("The try-on service could not sign in to Replicate. "
                        "The site's operator needs to check the API token.", status=status)
    if status == 402:
        return Rejected("The try-on service has run out of Replicate credit. Please try again later.", status=status)
    if status == 422:
        reason = detail[:200] or "input validation failed"
        return Rejected(f"Replicate did not accept this step's images: {reason}.", status=status)
    return Rejected(f"Replicate refused this step ({status}{': ' + detail[:200] if detail else ''}).", status=status)
