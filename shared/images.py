"""Image inputs and outputs: data URIs, URL rules, header parsing (downloads: shared/downloads.py,
their hosts: shared/output_hosts.py)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import NamedTuple
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
# The most an uploaded image may claim in its header: a 48-megapixel phone photo fits; a small
# file claiming 30000x30000 (a decompression bomb) would only fail the model's step, paid.
MAX_PIXELS = 50_000_000
MAX_SIDE = 16384
CONTENT_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
_BASE64_WRAPPING = dict.fromkeys(map(ord, " \t\r\n"))  # str.translate: deleted
_DATA_URI = re.compile(r"^data:(image/[a-z0-9.+-]+)((?:;[a-z0-9-]+=[^;,]*)*);base64,", re.IGNORECASE)


class InvalidImage(ValueError):
    """Carries a sentence that names what is wrong; callers prefix the field name."""


class DownloadError(Exception):
    """Fetching an image failed. `transient` says whether trying again later may work."""

    def __init__(self, message: str, *, transient: bool):
        super().__init__(message)
        self.transient = transient


def sniff(data: bytes) -> str | None:
    """The real type of an image from its first bytes: PNG, JPEG or WebP, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}


def is_heif(data: bytes, declared_type: str = "") -> bool:
    """An iPhone photo (HEIC/HEIF): an ISO box file whose `ftyp` brand names HEIF."""
    return declared_type.lower() in ("image/heic", "image/heif") or (
        data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS)


def dimensions(data: bytes, content_type: str) -> tuple[int, int] | None:
    """Width and height read from the image's header, or None when the header does not parse:
    the first bytes alone prove nothing (PNG magic followed by HTML is still HTML)."""
    try:
        if content_type == "image/png":
            # The IHDR chunk must come first: length 13, then width and height.
            if data[8:16] != b"\x00\x00\x00\rIHDR" or len(data) < 33:
                return None
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if content_type == "image/webp":
            return _webp_size(data)
        if content_type == "image/jpeg":
            return _jpeg_size(data)
    except IndexError:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and data[20:21] == b"\x2f" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


# JPEG start-of-frame markers (baseline, progressive, ...): they carry the image's size.
_JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if length < 2:
            return None
        if marker in _JPEG_FRAMES:
            if at + 9 > len(data):
                return None
            return int.from_bytes(data[at + 7:at + 9], "big"), int.from_bytes(data[at + 5:at + 7], "big")
        at += 2 + length
    return None


class ImageRef(NamedTuple):
    """An image given to start: a URL, or decoded bytes from a data URI."""

    url: str | None = None
    data: bytes | None = None
    content_type: str | None = None

    def as_data_uri(self) -> str:
        return to_data_uri(self.data or b"", self.content_type or "")


def to_data_uri(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def parse_image(value: object, *, max_bytes: int, http_origins: tuple[str, ...] = (),
                min_side: int = 0) -> ImageRef:
    """An image given to start. A data URI is decoded and its header read (type and size); an
    https URL is only checked as a URL: start does not download it (that keeps start fast), so a
    bad file behind a URL shows up as a failed step."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidImage("must be an image: an https:// URL or a data:image/...;base64, data URI")
    value = value.strip()
    if value[:5].lower() == "data:":
        return _parse_data_uri(value, max_bytes, min_side)
    return ImageRef(url=check_url(value, http_origins))


def check_url(value: str, http_origins: tuple[str, ...] = ()) -> str:
    if len(value) > MAX_URL_LENGTH:
        raise InvalidImage(f"is a URL longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidImage("is a URL with spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidImage("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        raise InvalidImage("must be an https:// URL or a data:image/...;base64, data URI")
    if parts.username is not None or parts.password is not None:
        raise InvalidImage("is a URL with a user name or password in it; use a public image URL")
    if scheme == "http":
        origin = f"http://{parts.hostname}" + (f":{port}" if port else "")
        if origin.lower() not in http_origins:
            raise InvalidImage("must use https:// (plain http is only accepted for this server's own files)")
    return value


def _parse_data_uri(value: str, max_bytes: int, min_side: int) -> ImageRef:
    match = _DATA_URI.match(value)
    if not match:
        raise InvalidImage("is a data URI that is not data:image/<type>;base64,<data>")
    # Line-wrapped base64 (the `base64` tool's and MIME's 76 columns) is the same data. translate,
    # not split: a body of "A A A ..." would be millions of little strings.
    payload = value[match.end():].translate(_BASE64_WRAPPING)
    # Base64 is 4 characters for 3 bytes: refuse oversized input before decoding it.
    if len(payload) > (max_bytes // 3 + 1) * 4 + 4:
        raise InvalidImage(f"is larger than {megabytes(max_bytes)}")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("is a data URI whose base64 data is broken") from None
    if len(data) > max_bytes:
        raise InvalidImage(f"is larger than {megabytes(max_bytes)}")
    real_type = sniff(data)
    if is_heif(data, match.group(1)):
        raise InvalidImage("is a HEIC photo, and HEIC is not supported: save the photo as JPEG or PNG and try again")
    if real_type is None and data[:4] == b"GIF8":
        raise InvalidImage("is a GIF, and GIF is not supported: save the image as JPEG or PNG and try again")
    if real_type is None:
        raise InvalidImage("is not a PNG, JPEG or WebP image")
    size = dimensions(data, real_type)
    if size is None or min(size) < 1:
        raise InvalidImage(f"is not a readable {real_type[6:].upper()} image: its header is broken")
    if min(size) < min_side:
        raise InvalidImage(f"is {size[0]}x{size[1]} pixels, too small: each side must be at least {min_side} pixels")
    if max(size) > MAX_SIDE or size[0] * size[1] > MAX_PIXELS:
        raise InvalidImage(f"is {size[0]}x{size[1]} pixels, too large: at most {MAX_PIXELS // 1_000_000} megapixels "
                           f"and {MAX_SIDE} pixels a side")
    return ImageRef(data=data, content_type=real_type)


def megabytes(n: int) -> str:
    """A size as people read it: 3 MB, 0.0191 MB."""
    return f"{n / (1024 * 1024):.3g} MB"


def first_url(output: object) -> str | None:
    """Replicate's output for an image model: a URL string, or a list whose first item is one."""
    if isinstance(output, str):
        return output or None
    if isinstance(output, list):
        for item in output:
            if isinstance(item, str) and item:
                return item
    return None
