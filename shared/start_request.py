"""The start request (POST /start): a person image, garments and hints, checked before anything
is written or sent to Replicate. Each failure is an `InvalidInput` (or `Unauthorized`) with a
sentence and a code; none changes anything."""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from shared.errors import InvalidInput
from shared.images import ImageRef, InvalidImage, parse_image
from shared.settings import Settings
from shared.task import CATEGORIES
from shared.validation import require_user

MAX_DESCRIPTION = 300
MAX_PROMPT_HINTS = 500


class GarmentInput(NamedTuple):
    image: ImageRef
    description: str | None
    category: str


class StartRequest(NamedTuple):
    user_id: str
    person: ImageRef
    garments: tuple[GarmentInput, ...]
    prompt_hints: str | None

    def fingerprint(self) -> str:
        """Identifies the request for Idempotency-Key reuse checks (images by content hash)."""

        def image(ref: ImageRef) -> str:
            return ref.url if ref.url else "sha256:" + hashlib.sha256(ref.data or b"").hexdigest()

        canonical = json.dumps({
            "person": image(self.person),
            "garments": [[image(g.image), g.description, g.category] for g in self.garments],
            "prompt_hints": self.prompt_hints,
        }, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _http_origins(settings: Settings) -> tuple[str, ...]:
    """Plain http is accepted only for this deployment's own file server (the devserver)."""
    if settings.public_files_url.startswith("http://"):
        parts = urlsplit(settings.public_files_url)
        return (f"http://{parts.hostname}" + (f":{parts.port}" if parts.port else ""),)
    return ()


def _image(value: Any, field: str, settings: Settings) -> ImageRef:
    try:
        return parse_image(value, max_bytes=settings.max_image_bytes, http_origins=_http_origins(settings),
                           min_side=settings.min_image_side)
    except InvalidImage as error:
        raise InvalidInput(f"{field} {error}.", code="invalid_image") from None


def _optional_text(value: Any, field: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text.", code="invalid_field")
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"{field} must be at most {limit} characters.", code="invalid_field")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise InvalidInput(f"{field} must not contain control characters.", code="invalid_field")
    return value or None


def parse_start(body: dict[str, Any], header_user: str | None, settings: Settings) -> StartRequest:
    # With REQUIRE_USER_ID a login gateway names the user in the header; the body's user_id, which
    # anyone can write, would let a caller without a login put looks on someone else's account.
    user_id = require_user(header_user, None if settings.require_user_id else body.get("user_id"))
    if "person_image" not in body or body["person_image"] in (None, ""):
        raise InvalidInput("person_image is required", code="missing_field")
    person = _image(body["person_image"], "person_image", settings)
    garments_value = body.get("garments")
    if garments_value is None:
        raise InvalidInput("garments is required", code="missing_field")
    if not isinstance(garments_value, list):
        raise InvalidInput("garments must be a list of images or {image, description, category} objects.",
                         code="invalid_field")
    if not garments_value:
        raise InvalidInput("garments must have at least one garment.", code="invalid_field")
    if len(garments_value) > settings.max_garments:
        raise InvalidInput(f"At most {settings.max_garments} garments can be tried on in one look.",
                         code="too_many_garments")
    garments = tuple(_garment(item, i, settings) for i, item in enumerate(garments_value))
    prompt_hints = _optional_text(body.get("prompt_hints"), "prompt_hints", MAX_PROMPT_HINTS)
    return StartRequest(user_id, person, garments, prompt_hints)


def _garment(item: Any, index: int, settings: Settings) -> GarmentInput:
    field = f"garments[{index}]"
    if isinstance(item, str):
        return GarmentInput(_image(item, field, settings), None, "upper_body")
    if not isinstance(item, dict):
        raise InvalidInput(f"{field} must be an image or an object with an image.", code="invalid_field")
    if item.get("image") in (None, ""):
        raise InvalidInput(f"{field}.image is required", code="missing_field")
    image = _image(item["image"], f"{field}.image", settings)
    description = _optional_text(item.get("description"), f"{field}.description", MAX_DESCRIPTION)
    category = item.get("category") or "upper_body"
    if category not in CATEGORIES:
        raise InvalidInput(f"{field}.category must be one of {', '.join(CATEGORIES)}.", code="invalid_field")
    return GarmentInput(image, description, category)
