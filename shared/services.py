"""What the domain talks to, built on first use: a status poll without force_check touches only
the database, so it never imports the replicate client, httpx, requests or boto3."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.db import Database
from shared.lazy import once
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.replicate_api import ReplicateAPI
    from shared.storage import Store


class Services:
    def __init__(self, settings: Settings):
        self.settings = settings

    @once
    def db(self) -> Database:
        return Database(self.settings.database_url)

    @once
    def replicate(self) -> ReplicateAPI:
        from shared.replicate_api import ReplicateAPI

        return ReplicateAPI(self.settings)

    @once
    def storage(self) -> Store | None:
        """S3 or a local folder; None when neither is configured (images stay where they are)."""
        from shared import storage

        return storage.from_settings(self.settings)
