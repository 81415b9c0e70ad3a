"""Checking what a caller sent, before anything is written or sent to Replicate: the start
request, task ids, actions, user ids and Idempotency-Keys. Each failure is an `InvalidInput`
(or `Unauthorized`) with a sentence and a code; none changes anything."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.errors import InvalidInput, TaskNotFound, Unauthorized
from shared.images import ImageRef, InvalidImage, parse_image
from shared.settings import Settings
from shared.states import Action
from shared.task import CATEGORIES

MAX_DESCRIPTION = 300
MAX_PROMPT_HINTS = 500
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
USER_ID_RE = re.compile(r"^[A-Za-z0-9._:@+=\-]{1,128}$")


def check_text(value: Any, field: str = "the request") -> None:
    """Every string in a request body (keys too) must be text that can be stored and sent on:
    JSON may carry lone UTF-16 surrogates ("\\ud800"), which no UTF-8 writer accepts."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{field} is not valid text: it contains a broken character (a lone UTF-16 "
                               "surrogate). Send it as UTF-8 text.", code="invalid_text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            name = key if field == "the request" else f"{field}.{key}"
            check_text(key, "A field name")
            check_text(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{field}[{index}]")


def valid_user_id(value: Any) -> str:
    if not isinstance(value, str) or not USER_ID_RE.match(value):
        raise InvalidInput(
            "The user id must be 1-128 letters, digits or . _ - : @ + = characters.",
            code="invalid_user_id",
        )
    return value


@dataclass(frozen=True)
class GarmentInput:
    image: ImageRef
    description: str | None
    category: str


@dataclass(frozen=True)
class StartRequest:
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


# --- the start request -------------------------------------------------------------------------------------

def require_user(header_user: str | None, body_user: Any = None) -> str:
    """The header wins over the body; neither is a 401."""
    if header_user:
        return header_user
    if body_user is not None and body_user != "":
        return valid_user_id(body_user)
    raise Unauthorized("User ID required", code="user_required")


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
    user_id = require_user(header_user, body.get("user_id"))
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


def check_task_id(value: Any) -> str:
    """Our task ids are UUIDs; the seed's column is TEXT, so any other id is simply one we do not
    have: 404, answered without a query."""
    if value is None or value == "":
        raise InvalidInput("task_id is required", code="missing_field")
    if not isinstance(value, str) or not UUID_RE.match(value.strip().lower()):
        raise TaskNotFound()
    return value.strip().lower()


def check_idempotency_key(value: str | None) -> str | None:
    if value is None or value.strip() == "":
        return None
    if not IDEMPOTENCY_KEY_RE.match(value.strip()):
        raise InvalidInput("Idempotency-Key must be 1-255 visible ASCII characters.", code="invalid_idempotency_key")
    return value.strip()


def check_action(value: Any) -> Action:
    if value is None or value == "":
        return Action.CONTINUE
    names = [action.value for action in Action]
    if not isinstance(value, str) or value.strip().lower() not in names:
        raise InvalidInput(f"action must be one of {', '.join(names)}.", code="invalid_action")
    return Action(value.strip().lower())
