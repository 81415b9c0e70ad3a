"""`python3 -m deploy.yc_env tryon.env`: the `--environment` arguments for `yc serverless function
version create`, one per variable, NUL-separated (read them with `mapfile -d ''`).

yc parses each `--environment` value as spf13/pflag's key=value map does: a value with one `=` is
taken whole (commas included, surrounding quotes trimmed); a value with more is read as one CSV
record, so an unquoted comma splits it. A two-host DATABASE_URL with `?sslmode=` or a keyword DSN
(`host=a,b port=6432 ...`) is the usual victim: joined into a single `--environment`, as
`paste -sd,` does, it came apart silently. Each variable here gets its own argument, CSV-quoted
when it has more than one `=`.
"""

from __future__ import annotations

import sys
from pathlib import Path


def variables(text: str) -> list[tuple[str, str]]:
    """KEY=VALUE lines of an env file; blank lines and # comments skipped."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"line {number} is not NAME=value")
        found.append((name.strip(), value))
    return found


def argument(name: str, value: str) -> str:
    item = f"{name}={value}"
    if item.count("=") == 1:
        if item.endswith('"'):  # pflag trims quotes off both ends of a one-`=` value
            raise ValueError(f"{name}: a value ending in a quote cannot pass yc's --environment; set it in the console")
        return item
    return '"' + item.replace('"', '""') + '"'  # one CSV field, whatever commas or quotes it holds


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python3 -m deploy.yc_env ENV_FILE", file=sys.stderr)
        return 2
    try:
        pairs = variables(Path(args[0]).read_text(encoding="utf-8"))
        out = "".join(f"--environment\0{argument(name, value)}\0" for name, value in pairs)
    except ValueError as error:
        print(f"{args[0]}: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
