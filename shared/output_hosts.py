"""Where a finished step's image may be fetched from. A prediction's output URL, and every redirect
after it, must be https on Replicate's delivery domains, the configured storage's public host or an
OUTPUT_HOSTS name, on port 443 (or the storage public URL's own port), and must resolve to public
addresses only: otherwise an output URL (or a redirect) could make the checker fetch from our own
network and store what it got.
The local simulator's own origin is the one exception, and only while REPLICATE_BASE_URL is a local
http URL (tests and `make run`)."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from shared.images import DownloadError

if TYPE_CHECKING:
    import concurrent.futures

REPLICATE_DELIVERY = "replicate.delivery"  # and its subdomains (pbxt.replicate.delivery, ...)
_UNSENDABLE_HOST = re.compile(r"[\x00-\x20\x7f]")  # a name may be non-ASCII (IDNA)
_UNSENDABLE_PATH = re.compile(r"[^\x21-\x7e]")


def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port if parts.port is not None else {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    return f"{parts.scheme.lower()}://{host}:{port}" if host and port is not None else None


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified
                                 or ip.is_multicast or ip.is_reserved)


def _local_http_origin(base_url: str) -> str | None:
    """REPLICATE_BASE_URL's origin when it is plain http on this machine or network (the simulator)."""
    origin = _origin(base_url)
    if origin is None or not origin.startswith("http://"):
        return None
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "localhost":
        return origin
    try:
        return None if _is_public(host) else origin
    except ValueError:  # a name, not an address: not known to be local
        return None


class OutputHosts(NamedTuple):
    names: frozenset[str]  # https hosts allowed on port 443 besides Replicate's delivery domains
    local_origin: str | None = None  # the simulator's origin, allowed over http to local addresses
    storage_origin: str | None = None  # the storage's public origin, on whatever port it names

    @classmethod
    def of(cls, replicate_base_url: str, storage_public_url: str | None, output_hosts: tuple[str, ...]) -> OutputHosts:
        names = {name.lower() for name in output_hosts}
        storage_host = urlsplit(storage_public_url or "").hostname
        if storage_host:
            names.add(storage_host.lower())
        storage_origin = _origin(storage_public_url) if storage_public_url else None
        return cls(frozenset(names), _local_http_origin(replicate_base_url), storage_origin)

    def is_local(self, url: str) -> bool:
        """Whether `url` is the local simulator's (its addresses are then not checked)."""
        return self.local_origin is not None and _origin(url) == self.local_origin

    def check(self, url: str, seconds: float) -> None:
        """Raises a permanent DownloadError unless `url` may be fetched; resolves its host (within
        `seconds`) and refuses it if any address it has is not public."""
        parts = urlsplit(url)
        if "@" in parts.netloc:  # http.client would take it for part of the host: never fetchable
            raise DownloadError("the image URL carries credentials", transient=False)
        # What http.client would refuse to send (urlsplit has already dropped tabs and newlines):
        # never fetchable either.
        if _UNSENDABLE_HOST.search(parts.netloc) or _UNSENDABLE_PATH.search(parts.path + parts.query):
            raise DownloadError(f"the image URL has spaces, control or non-ASCII characters ({_shown(url)!r})",
                                transient=False)
        if self.is_local(url):
            return
        host = (parts.hostname or "").lower()
        if parts.scheme.lower() != "https" or not host:
            raise DownloadError(f"the image URL is not https ({_shown(url)})", transient=False)
        if not (host == REPLICATE_DELIVERY or host.endswith("." + REPLICATE_DELIVERY) or host in self.names):
            raise DownloadError(f"the image is on {host}, which is not an allowed image host "
                                "(Replicate's, this site's storage or OUTPUT_HOSTS)", transient=False)
        try:
            port = 443 if parts.port is None else parts.port
        except ValueError:
            raise DownloadError(f"the image URL's port cannot be read ({_shown(url)})", transient=False) from None
        # An allowed host's other ports are other services (an admin panel, a debug server).
        if port != 443 and _origin(url) != self.storage_origin:
            raise DownloadError(f"the image URL names port {port} on {host}; only 443 (or the storage's own "
                                "public URL) is allowed", transient=False)
        for address in _resolve(host, port, seconds):
            if not _is_public(address):
                raise DownloadError(f"the image host {host} resolves to a private address", transient=False)

    def check_peer(self, url: str, sock: socket.socket | None) -> None:
        """The address actually connected to must be public too (a name can resolve differently twice)."""
        if self.is_local(url) or sock is None:
            return
        try:
            address = sock.getpeername()[0]
        except OSError:
            return  # already closed: nothing will be read from it
        if not _is_public(address):
            raise DownloadError("the image host connected to a private address", transient=False)


_resolver: concurrent.futures.ThreadPoolExecutor | None = None  # made on the first name to resolve


def _resolve(host: str, port: int, seconds: float) -> list[str]:
    """Every address of `host`, within `seconds` (a resolver can hang far longer than a download may)."""
    global _resolver
    import concurrent.futures

    if _resolver is None:
        _resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=max(seconds, 0.01))
    except concurrent.futures.TimeoutError:
        raise DownloadError(f"the image host {host} could not be resolved in time", transient=True) from None
    except OSError:
        raise DownloadError(f"the image host {host} could not be resolved", transient=True) from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise DownloadError(f"the image host {host} has no address", transient=True)
    return addresses


def _shown(url: str) -> str:
    return url if len(url) <= 100 else url[:100] + "…"
