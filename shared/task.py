"""A row of replicate_tasks as a typed value, and the garments it holds."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any, NamedTuple

from shared.states import Status

CATEGORIES = ("upper_body", "lower_body", "dresses")
CATEGORY_WORDS = {"upper_body": "top", "lower_body": "bottoms", "dresses": "dress"}


class Garment(NamedTuple):
    image: str
    description: str | None
    category: str


class Task(NamedTuple):
    """One task as the statements in `shared.queries` return it (`RETURNING *` and friends).
    Columns a statement did not select are None; `previous_status` is the worker claim's."""

    id: str
    user_id: str
    status: Status
    person_image: str | None = None
    garments: str | None = None
    prompt_hints: str | None = None
    result_url: str | None = None
    error_message: str | None = None
    prediction_id: str | None = None
    intermediate_result: str | None = None
    current_step: int = 0
    total_steps: int = 0
    attempt: int = 1
    claim_token: str | None = None
    step_started_at: datetime | None = None
    request_hash: str | None = None
    file_prefix: str | None = None  # where its images are stored (shared.storage.key_for)
    previous_status: Status | None = None
    launch_failures: int = 0
    create_sent_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Task:
        values = {name: row[name] for name in _FIELDS if name in row}
        for name in ("status", "previous_status"):
            if values.get(name) is not None:
                values[name] = Status(values[name])
        for name in ("current_step", "total_steps"):  # NULL in rows the original functions wrote
            values[name] = values.get(name) or 0
        values["attempt"] = values.get("attempt") or 1
        return cls(**values)

    def garment_list(self) -> list[Garment]:
        return parse_garments(self.garments)


_FIELDS = frozenset(Task._fields)


def parse_garments(text: str | None) -> list[Garment]:
    """The task's garments; rows written by the original functions may hold plain URLs."""
    # A warm status instance parses the same look's text every poll; long texts (data URIs
    # kept when no storage is configured) are not worth keeping in memory.
    if text is not None and len(text) <= 4096:
        return list(_parse_garments_cached(text))
    return list(_parse_garments(text))


def _parse_garments(text: str | None) -> tuple[Garment, ...]:
    try:
        items = json.loads(text or "")
    except (TypeError, ValueError):
        return ()
    garments = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            item = {"image": item}
        if isinstance(item, dict) and isinstance(item.get("image"), str):
            category = item.get("category")
            garments.append(Garment(
                image=item["image"],
                description=item.get("description"),
                category=category if category in CATEGORIES else "upper_body",
            ))
    return tuple(garments)


_parse_garments_cached = functools.lru_cache(maxsize=256)(_parse_garments)
