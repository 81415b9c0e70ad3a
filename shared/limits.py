"""Spending caps: how many looks a user (and the whole site) may have unfinished or start in an
hour, and how many paid steps may run in an hour. Past a cap the answer is `LimitReached` with
a Retry-After; nothing is written."""

from __future__ import annotations

from typing import Any

from shared.errors import LimitReached
from shared.settings import Settings


def check_caps(counts: dict[str, Any], settings: Settings) -> None:
    """Start's caps from `start_queries.START_CHECKS`: the user's looks in progress (pending or
    processing: a look waiting for Continue spends nothing) and hourly starts, then the site's."""
    active = counts["user_active"]
    if active >= settings.max_active_tasks_per_user:
        raise LimitReached(
            f"You already have {_looks(active)} in progress. "
            "Wait for one to finish or cancel it before starting another.",
            code="too_many_active_tasks", retry_after=60,
        )
    if counts["user_recent_starts"] >= settings.start_rate_per_user:
        raise LimitReached(
            f"You have started {_looks(counts['user_recent_starts'])} in the last hour, the most allowed. "
            "Please try again later.",
            code="start_rate_limited", retry_after=int(counts["retry_after"] or 60),
        )
    if counts["site_active"] >= settings.max_active_tasks:
        raise LimitReached("The try-on service is very busy right now. Please try again in a few minutes.",
                              code="service_busy", retry_after=300)
    check_site_step_budget(counts["site_recent_steps"], settings)


def _looks(count: int) -> str:
    return f"{count} look" if count == 1 else f"{count} looks"


def cap_limits(settings: Settings) -> dict[str, int]:
    """The caps as `start_queries.INSERT_TASK` parameters."""
    return {
        "max_user_active": settings.max_active_tasks_per_user, "max_user_starts": settings.start_rate_per_user,
        "max_site_active": settings.max_active_tasks, "max_site_steps": settings.max_steps_per_hour,
    }


def check_step_budget(counts: dict[str, Any], settings: Settings) -> None:
    """Continue and Retry each start a paid prediction: at most START_RATE_PER_USER looks' worth
    of steps (x MAX_GARMENTS) an hour per user, and MAX_STEPS_PER_HOUR for the whole site, so a
    Retry loop cannot spend without bound. `counts`: `queries.STEP_BUDGET`'s row."""
    limit = settings.start_rate_per_user * settings.max_garments
    if counts["user_steps"] >= limit:
        raise LimitReached(
            f"You have run {limit} try-on steps in the last hour, the most allowed. Please try again later.",
            code="step_rate_limited", retry_after=600,
        )
    check_site_step_budget(counts["site_steps"], settings)


def check_site_step_budget(steps_last_hour: int, settings: Settings) -> None:
    if steps_last_hour >= settings.max_steps_per_hour:
        raise LimitReached("The try-on service has reached its hourly limit. Please try again later.",
                              code="service_busy", retry_after=600)
