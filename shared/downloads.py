"""Bounded downloads of output images: a wall-clock deadline on the whole download, a size cap,
redirects followed here with every hop's host checked (shared/output_hosts.py), and the file's
type taken from its parsed header. Over the standard library (`shared.plain_http`): requests
would cost a checker's cold start more than the rest of the download path."""

from __future__ import annotations

import functools
import http.client
import time
from urllib.parse import urljoin

from shared import plain_http
from shared.images import DownloadError, dimensions, megabytes, sniff
from shared.output_hosts import OutputHosts

MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})


def download(url: str, *, max_bytes: int, hosts: OutputHosts, timeout: float = 15.0) -> tuple[bytes, str]:
    """Fetches an image; returns (bytes, content type). `timeout` bounds the whole download, not
    each read: a host dripping bytes is cut off."""
    deadline = time.monotonic() + timeout
    try:
        for _ in range(MAX_REDIRECTS + 1):
            hosts.check(url, deadline - time.monotonic())
            reply = plain_http.request("GET", url, deadline=deadline, max_bytes=max_bytes,
                                       on_connect=functools.partial(hosts.check_peer, url))
            if reply.status in REDIRECTS and reply.headers.get("location"):
                url = urljoin(url, reply.headers["location"])
                continue
            break
        else:
            raise DownloadError(f"the image host redirected more than {MAX_REDIRECTS} times", transient=False)
    except plain_http.TimedOut:
        raise DownloadError(f"the image host did not finish sending it within {timeout:g} s", transient=True) from None
    except plain_http.TooLarge:
        raise DownloadError(f"the image is larger than {megabytes(max_bytes)}", transient=False) from None
    except ValueError:  # a Location that is not http(s)
        raise DownloadError("the image host redirected to a URL that is not http(s)", transient=False) from None
    except (OSError, http.client.HTTPException) as error:
        raise DownloadError(f"the image could not be fetched ({type(error).__name__})", transient=True) from None
    if reply.status in (404, 410):
        raise DownloadError("the image is no longer available", transient=False)
    if reply.status == 429 or reply.status >= 500:
        raise DownloadError(f"the image host answered {reply.status}", transient=True)
    if reply.status != 200:
        raise DownloadError(f"the image host answered {reply.status}", transient=False)
    content_type = sniff(reply.body)
    size = dimensions(reply.body, content_type) if content_type else None
    # The stored file's type is what its parsed header says: PNG magic followed by HTML is refused.
    if content_type is None or size is None or min(size) < 1:
        raise DownloadError("the file is not a readable PNG, JPEG or WebP image", transient=False)
    return reply.body, content_type
