"""`python -m migrations`: apply pending migrations to DATABASE_URL."""

import os
import sys

import psycopg2

from migrations import MigrationError, apply


def main() -> int:
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print("DATABASE_URL is not set: point it at the PostgreSQL database to migrate.", file=sys.stderr)
        return 2
    try:
        applied = apply(dsn)
    except (MigrationError, psycopg2.Error) as exc:
        print(f"migration failed: {exc}", file=sys.stderr)
        return 1
    print(f"{len(applied)} migration(s) applied" if applied else "database is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
