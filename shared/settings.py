"""Settings from the environment. Each invocation makes a new `Settings`, so it always sees the
current environment; each value is read and checked the first time the invocation asks for it,
so a status poll reads the two or three it needs, not all forty-odd."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from typing import TypeVar

from shared.lazy import once

DEFAULT_MODEL = "cuuupid/idm-vton"
DEFAULT_VERSION = "0452664a003fbcc9bd2b9dbe31207b6bde4fb33932a226d67b72a28e5306bf77"
MODEL_PROFILES = ("idm-vton", "nano-banana", "custom")


class ConfigError(RuntimeError):
    """A setting is missing or malformed: an operator problem, answered as 503."""


T = TypeVar("T")


class _setting(once[T]):
    """A setting: read from the environment and checked on first use, then kept on the instance."""

    def __init__(self, read: Callable[[Settings], T]):  # typed, so that each reader's lambda is checked
        super().__init__(read)


# A list setting's items: separated by commas or spaces (a platform's CLI may split at commas).
_LIST = re.compile(r"[\s,]+")


@functools.lru_cache(maxsize=8)  # every call reads it, and an instance sees one value
def _origins(text: str) -> tuple[str, ...]:
    # An origin's scheme and host are case-insensitive, and browsers send them in lower case.
    return tuple(o.rstrip("/").lower() for o in _LIST.split(text) if o) or ("*",)


def origin_allowed(origins: tuple[str, ...], origin: str) -> bool:
    """Whether the request's `Origin` is one of ALLOWED_ORIGINS (parsed by `_origins`)."""
    return "*" in origins or origin.rstrip("/").lower() in origins


class Settings:
    def __init__(self, env: Mapping[str, str]):
        self._env = env

    # --- readers ---------------------------------------------------------------------------------

    def _text(self, name: str, default: str = "") -> str:
        return self._env.get(name, default).strip()

    def _url(self, name: str) -> str:
        return self._text(name).rstrip("/")

    def _int(self, name: str, default: int, minimum: int = 0) -> int:
        raw = self._text(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}")
        return value

    def _float(self, name: str, default: float) -> float:
        raw = self._text(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if value <= 0:
            raise ConfigError(f"{name} must be positive")
        return value

    # --- the settings (README's table) -------------------------------------------------------------

    database_url = _setting(lambda self: self._env.get("DATABASE_URL", ""))
    replicate_api_token = _setting(lambda self: self._env.get("REPLICATE_API_TOKEN", ""))
    replicate_base_url = _setting(lambda self: self._url("REPLICATE_BASE_URL"))
    replicate_model = _setting(lambda self: self._text("REPLICATE_MODEL") or DEFAULT_MODEL)
    replicate_version = _setting(lambda self: self._text("REPLICATE_VERSION", DEFAULT_VERSION))
    # Model profiles (shared/profiles.py; docs/deploy.md has the table).
    @_setting
    def model_profile(self) -> str:
        name = self._text("MODEL_PROFILE").lower() or "idm-vton"
        if name not in MODEL_PROFILES:
            raise ConfigError(f"MODEL_PROFILE must be one of {', '.join(MODEL_PROFILES)}, got {name!r}")
        return name

    custom_model = _setting(lambda self: self._text("REPLICATE_MODEL"))
    custom_version = _setting(lambda self: self._text("REPLICATE_VERSION"))
    model_input_template = _setting(lambda self: self._text("MODEL_INPUT_TEMPLATE"))
    model_price_usd = _setting(lambda self: self._text("MODEL_PRICE_USD"))

    @_setting
    def model_price_basis(self) -> str:
        basis = self._text("MODEL_PRICE_BASIS").lower() or "second"
        if basis not in ("second", "image"):
            raise ConfigError(f"MODEL_PRICE_BASIS must be second or image, got {basis!r}")
        return basis

    model_typical_step_s = _setting(lambda self: self._int("MODEL_TYPICAL_STEP_S", 0))
    replicate_webhook_secret = _setting(lambda self: self._text("REPLICATE_WEBHOOK_SECRET"))
    webhook_token_secret = _setting(lambda self: self._text("WEBHOOK_TOKEN_SECRET"))
    worker_url = _setting(lambda self: self._text("WORKER_URL"))
    checker_url = _setting(lambda self: self._text("CHECKER_URL"))
    cron_secret = _setting(lambda self: self._env.get("CRON_SECRET", ""))
    s3_bucket = _setting(lambda self: self._text("S3_BUCKET"))
    s3_endpoint_url = _setting(lambda self: self._text("S3_ENDPOINT_URL"))
    s3_public_url = _setting(lambda self: self._url("S3_PUBLIC_URL"))
    local_storage_dir = _setting(lambda self: self._text("LOCAL_STORAGE_DIR"))
    public_files_url = _setting(lambda self: self._url("PUBLIC_FILES_URL"))
    max_garments = _setting(lambda self: self._int("MAX_GARMENTS", 5, minimum=1))
    step_timeout_s = _setting(lambda self: self._int("STEP_TIMEOUT_S", 600, minimum=5))
    checker_concurrency = _setting(lambda self: self._int("CHECKER_CONCURRENCY", 16, minimum=1))
    checker_budget_s = _setting(lambda self: self._float("CHECKER_BUDGET_S", 20.0))
    worker_budget_s = _setting(lambda self: self._float("WORKER_BUDGET_S", 20.0))
    require_user_id = _setting(lambda self: self._text("REQUIRE_USER_ID").lower() in ("1", "true", "yes", "on"))
    max_active_tasks_per_user = _setting(lambda self: self._int("MAX_ACTIVE_TASKS_PER_USER", 3, minimum=1))
    start_rate_per_user = _setting(lambda self: self._int("START_RATE_PER_USER", 30, minimum=1))
    max_image_bytes = _setting(lambda self: self._int("MAX_IMAGE_BYTES", 3 * 1024 * 1024, minimum=1024))
    min_image_side = _setting(lambda self: self._int("MIN_IMAGE_SIDE", 256, minimum=1))
    max_active_tasks = _setting(lambda self: self._int("MAX_ACTIVE_TASKS", 1000, minimum=1))
    max_steps_per_hour = _setting(lambda self: self._int("MAX_STEPS_PER_HOUR", 2000, minimum=1))
    look_idle_finish_s = _setting(lambda self: self._int("LOOK_IDLE_FINISH_S", 86400, minimum=60))
    public_page_url = _setting(lambda self: self._text("PUBLIC_PAGE_URL"))  # as given: /try/ is not /try
    completion_webhook_url = _setting(lambda self: self._text("COMPLETION_WEBHOOK_URL"))
    completion_webhook_secret = _setting(lambda self: self._text("COMPLETION_WEBHOOK_SECRET"))

    @_setting
    def completion_webhook_format(self) -> str:
        value = self._text("COMPLETION_WEBHOOK_FORMAT", "standard").lower()
        if value not in ("standard", "try-on-history"):
            raise ConfigError("COMPLETION_WEBHOOK_FORMAT must be standard or try-on-history")
        return value

    # Internal knobs with safe defaults, for tests and operators.
    @_setting
    def claim_stale_s(self) -> float:
        stale = self._float("CLAIM_STALE_S", 90.0)
        # A claim is re-driven after this long: a create must be able to start and finish well inside it.
        if stale < self.replicate_timeout_s + 1.5:
            raise ConfigError("CLAIM_STALE_S must be at least REPLICATE_TIMEOUT_S + 1.5 seconds")
        return stale

    recheck_interval_s = _setting(lambda self: self._float("RECHECK_INTERVAL_S", 3.0))
    replicate_timeout_s = _setting(lambda self: self._float("REPLICATE_TIMEOUT_S", 15.0))
    replicate_reads_per_second = _setting(lambda self: self._float("REPLICATE_READS_PER_SECOND", 40.0))
    replicate_creates_per_second = _setting(lambda self: self._float("REPLICATE_CREATES_PER_SECOND", 8.0))

    allowed_origins = _setting(lambda self: _origins(self._env.get("ALLOWED_ORIGINS", "*")))

    @_setting
    def output_hosts(self) -> tuple[str, ...]:
        # Hosts (https) a step's output may be fetched from besides Replicate's and the storage's.
        return tuple(h.lower() for h in _LIST.split(self._env.get("OUTPUT_HOSTS", "")) if h)

    @property
    def max_body_bytes(self) -> int:
        # Every image as base64 (4/3 of its bytes) plus room for the rest of the JSON.
        return (self.max_garments + 1) * (self.max_image_bytes * 4 // 3 + 1024) + 64 * 1024


class _Recorder(dict[str, str]):
    """An empty environment that notes every name asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.names.append(name)
        return default


def env_names() -> tuple[str, ...]:
    """Every environment variable `Settings` reads, in the order of the class (for tests and docs)."""
    recorder = _Recorder()
    settings = Settings(recorder)
    for name, value in vars(Settings).items():
        if isinstance(value, _setting):
            getattr(settings, name)
    return tuple(dict.fromkeys(recorder.names))


def load(env: Mapping[str, str] | None = None) -> Settings:
    return Settings(os.environ if env is None else env)
