"""Settings from the environment, read once per invocation (cheap, and always current)."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_MODEL = "cuuupid/idm-vton"
DEFAULT_VERSION = "0452664a003fbcc9bd2b9dbe31207b6bde4fb33932a226d67b72a28e5306bf77"


class ConfigError(RuntimeError):
    """A setting is missing or malformed: an operator problem, answered as 503."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    replicate_api_token: str
    replicate_base_url: str
    replicate_model: str
    replicate_version: str
    replicate_webhook_secret: str
    worker_url: str
    checker_url: str
    cron_secret: str
    s3_bucket: str
    s3_endpoint_url: str
    s3_public_url: str
    local_storage_dir: str
    public_files_url: str
    max_garments: int
    step_timeout_s: int
    checker_concurrency: int
    checker_budget_s: float
    worker_budget_s: float
    allowed_origins: tuple[str, ...]
    require_user_id: bool
    max_active_tasks_per_user: int
    start_rate_per_user: int
    max_image_bytes: int
    max_active_tasks: int
    max_steps_per_hour: int
    # Not in the contract's list: internal knobs with safe defaults, for tests and operators.
    claim_stale_s: float
    recheck_interval_s: float
    replicate_timeout_s: float

    @property
    def storage_configured(self) -> bool:
        return bool(self.s3_bucket or self.local_storage_dir)

    @property
    def max_body_bytes(self) -> int:
        # Every image as base64 (4/3 of its bytes) plus room for the rest of the JSON.
        return (self.max_garments + 1) * (self.max_image_bytes * 4 // 3 + 1024) + 64 * 1024


def _int(env, name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return value


def _float(env, name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
    return value


def _flag(env, name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def load(env=None) -> Settings:
    env = os.environ if env is None else env
    origins = tuple(o.strip().rstrip("/") for o in env.get("ALLOWED_ORIGINS", "*").split(",") if o.strip())
    step_timeout = _int(env, "STEP_TIMEOUT_S", 600, minimum=5)
    return Settings(
        database_url=env.get("DATABASE_URL", ""),
        replicate_api_token=env.get("REPLICATE_API_TOKEN", ""),
        replicate_base_url=env.get("REPLICATE_BASE_URL", "").rstrip("/"),
        replicate_model=env.get("REPLICATE_MODEL", "").strip() or DEFAULT_MODEL,
        replicate_version=env.get("REPLICATE_VERSION", DEFAULT_VERSION).strip(),
        replicate_webhook_secret=env.get("REPLICATE_WEBHOOK_SECRET", "").strip(),
        worker_url=env.get("WORKER_URL", "").strip(),
        checker_url=env.get("CHECKER_URL", "").strip(),
        cron_secret=env.get("CRON_SECRET", ""),
        s3_bucket=env.get("S3_BUCKET", "").strip(),
        s3_endpoint_url=env.get("S3_ENDPOINT_URL", "").strip(),
        s3_public_url=env.get("S3_PUBLIC_URL", "").strip().rstrip("/"),
        local_storage_dir=env.get("LOCAL_STORAGE_DIR", "").strip(),
        public_files_url=env.get("PUBLIC_FILES_URL", "").strip().rstrip("/"),
        max_garments=_int(env, "MAX_GARMENTS", 5, minimum=1),
        step_timeout_s=step_timeout,
        checker_concurrency=_int(env, "CHECKER_CONCURRENCY", 16, minimum=1),
        checker_budget_s=_float(env, "CHECKER_BUDGET_S", 20.0),
        worker_budget_s=_float(env, "WORKER_BUDGET_S", 20.0),
        allowed_origins=origins or ("*",),
        require_user_id=_flag(env, "REQUIRE_USER_ID"),
        max_active_tasks_per_user=_int(env, "MAX_ACTIVE_TASKS_PER_USER", 3, minimum=1),
        start_rate_per_user=_int(env, "START_RATE_PER_USER", 30, minimum=1),
        max_image_bytes=_int(env, "MAX_IMAGE_BYTES", 3 * 1024 * 1024, minimum=1024),
        max_active_tasks=_int(env, "MAX_ACTIVE_TASKS", 1000, minimum=1),
        max_steps_per_hour=_int(env, "MAX_STEPS_PER_HOUR", 2000, minimum=1),
        claim_stale_s=_float(env, "CLAIM_STALE_S", 90.0),
        recheck_interval_s=_float(env, "RECHECK_INTERVAL_S", 3.0),
        replicate_timeout_s=_float(env, "REPLICATE_TIMEOUT_S", 15.0),
    )
