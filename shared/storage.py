"""Where images live once the project has them: S3 (or any S3-compatible store) or a local folder.

Replicate deletes API prediction outputs an hour after they are made, so every step's image is
copied here before a user is shown it, and the next step reads it from here.
Keys are `looks/<random per-look prefix>/<name>-<tag>.<ext>`: a shared image link names no task,
so it gives no handle on the look, and each file's tag keeps the look's other files out of reach.
Looks started before the prefix existed keep `tasks/<task id>/<name>.<ext>`.
Nothing here lists a bucket or folder.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared.errors import StorageError as StorageError  # re-exported: callers catch it from here
from shared.images import CONTENT_TYPES
from shared.settings import ConfigError, Settings

_KEY = re.compile(r"^(looks/[A-Za-z0-9_-]{22}|tasks/[0-9a-f-]{36})/[a-z0-9-]{1,64}\.(png|jpg|webp)$")


def new_file_prefix() -> str:
    """22 random URL-safe characters (128 bits): a look's folder, unguessable and unrelated to its id."""
    import secrets  # only a start makes a folder; a worker or checker reading files need not load it

    return secrets.token_urlsafe(16)


def file_name(name: str, secret: str | None = None) -> str:
    """`name` and 16 hex characters nobody can work out from the look's other files: a shared look
    shows some of its images, and so its folder, and must not give away the rest (the person's
    photo, a step made after the link was revoked). Derived from `secret` when given, a value a
    viewer never sees (a prediction's id), so the same file written twice lands on one key."""
    if secret is None:
        return f"{name}-{os.urandom(8).hex()}"
    import hashlib  # only a saved step names its file so; a status poll need not load it

    return f"{name}-{hashlib.sha256(secret.encode()).hexdigest()[:16]}"


def key_for(file_prefix: str | None, task_id: str, name: str, content_type: str) -> str:
    folder = f"looks/{file_prefix}" if file_prefix else f"tasks/{task_id}"  # the latter: older looks
    key = f"{folder}/{name}.{CONTENT_TYPES[content_type]}"
    if not _KEY.match(key):
        raise ValueError(f"not a storage key: {key!r}")
    return key


def run_within(seconds: float, calls: list[Callable[[], object]]) -> None:
    """Runs `calls` at once, a thread each, and waits at most `seconds` for all of them: an S3
    client retries a call that hangs for up to a minute, past a function's timeout. A call still
    running then is left to end on its own (a daemon thread) and this raises StorageError; so it
    does with the first error a call raised."""
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as error:  # handed to the caller's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(call,), daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    end = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise StorageError(f"storage did not answer within {seconds:.1f} s")
    if errors:
        raise errors[0]


class Store:
    """Where images are kept: put/get by key, and the public URL of a key."""

    public_url: str

    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Stores the bytes; returns their public URL."""
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Removes a file written for a look that was then not saved; a missing file is fine."""
        raise NotImplementedError

    def is_public(self) -> bool:
        """Whether Replicate can fetch this store's URLs itself."""
        raise NotImplementedError

    def key_of(self, url: str) -> str | None:
        """The key of a URL this store handed out, or None for anyone else's URL."""
        prefix = self.public_url + "/"
        if url.startswith(prefix) and _KEY.match(url[len(prefix):]):
            return url[len(prefix):]
        return None


class LocalStorage(Store):
    def __init__(self, root: str, public_url: str):
        if not public_url:
            raise ConfigError("PUBLIC_FILES_URL must be set with LOCAL_STORAGE_DIR")
        self.root = Path(root).resolve()
        self.public_url = public_url.rstrip("/")

    def put(self, key: str, data: bytes, content_type: str) -> str:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a reader never sees half a file.
            import tempfile  # only a local folder's writes need it (a start without data URIs does not)

            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError as error:
            raise StorageError(f"local storage write failed: {error.strerror}") from None
        return f"{self.public_url}/{key}"

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as error:
            raise StorageError(f"local storage read failed: {error.strerror}") from None

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as error:
            raise StorageError(f"local storage delete failed: {error.strerror}") from None

    def is_public(self) -> bool:
        host = (urlsplit(self.public_url).hostname or "").lower()
        return not (host in ("localhost", "0.0.0.0") or host.startswith("127.") or host.endswith(".local"))

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key


_s3_clients: dict[tuple[str | None, ...], Any] = {}
_s3_lock = threading.Lock()


class S3Storage(Store):
    def __init__(self, bucket: str, endpoint_url: str, public_url: str):
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        if public_url:
            self.public_url = public_url.rstrip("/")
        elif endpoint_url:
            self.public_url = f"{endpoint_url.rstrip('/')}/{bucket}"
        else:
            self.public_url = f"https://{bucket}.s3.amazonaws.com"

    @property
    def client(self) -> Any:
        # One client per instance and endpoint: warm calls reuse its connection pool.
        cache_key = (self.endpoint_url, os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_DEFAULT_REGION"))
        with _s3_lock:
            client = _s3_clients.get(cache_key)
            if client is None:
                import boto3
                from botocore.config import Config

                client = boto3.client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    config=Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 3, "mode": "standard"}),
                )
                _s3_clients[cache_key] = client
            return client

    def put(self, key: str, data: bytes, content_type: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        if not _KEY.match(key):
            raise ValueError(f"not a storage key: {key!r}")
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, ContentDisposition="inline",
                CacheControl="public, max-age=31536000, immutable",
            )
        except (BotoCoreError, ClientError) as error:
            raise StorageError(f"S3 write failed: {type(error).__name__}") from None
        return f"{self.public_url}/{key}"

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            data: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            return data
        except (BotoCoreError, ClientError) as error:
            raise StorageError(f"S3 read failed: {type(error).__name__}") from None

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as error:
            raise StorageError(f"S3 delete failed: {type(error).__name__}") from None

    def is_public(self) -> bool:
        return True


def from_settings(settings: Settings) -> Store | None:
    """The configured store, or None: then images stay where they were (the original behaviour)."""
    if settings.s3_bucket:
        return S3Storage(settings.s3_bucket, settings.s3_endpoint_url, settings.s3_public_url)
    if settings.local_storage_dir:
        return LocalStorage(settings.local_storage_dir, settings.public_files_url)
    return None
