"""`make package`: dist/<function>.zip for each function, ready to upload.

Each zip holds the function's index.py at its root (entry point `index.handler`), a copy of
shared/ made from the repository at build time (never by hand), and the pinned requirements.txt.
Yandex Cloud Functions installs requirements.txt itself. AWS Lambda does not: with
`--with-dependencies` (`make package-lambda`) the zip also carries the dependencies, installed from
manylinux wheels for the Lambda runtime's Python.

Zips are reproducible: files in sorted order with a fixed timestamp, so an unchanged function
builds to the same bytes (and a deploy tool can skip it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from shared.endpoints import NAMES

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = NAMES
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def _add(archive: zipfile.ZipFile, path: Path, name: str) -> None:
    info = zipfile.ZipInfo(name, FIXED_TIME)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, path.read_bytes())


def _files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path


def build(name: str, out_dir: Path, dependencies: Path | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.zip"
    with zipfile.ZipFile(target, "w") as archive:
        _add(archive, ROOT / "functions" / name / "index.py", "index.py")
        for path in _files(ROOT / "shared"):
            _add(archive, path, path.relative_to(ROOT).as_posix())
        _add(archive, ROOT / "requirements.txt", "requirements.txt")
        if dependencies is not None:
            for path in _files(dependencies):
                _add(archive, path, path.relative_to(dependencies).as_posix())
    return target


def install_dependencies(folder: Path, python_version: str) -> None:
    subprocess.run([
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--target", str(folder), "--platform", "manylinux2014_x86_64", "--implementation", "cp",
        "--python-version", python_version, "--only-binary=:all:", "-r", str(ROOT / "requirements.txt"),
    ], check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build dist/<function>.zip for each function.")
    parser.add_argument("--out", default=str(ROOT / "dist"))
    parser.add_argument("--with-dependencies", action="store_true", help="vendor the dependencies (AWS Lambda)")
    parser.add_argument("--python-version", default="3.12", help="the Lambda runtime's Python (with --with-dependencies)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        dependencies = None
        if args.with_dependencies:
            dependencies = Path(scratch)
            install_dependencies(dependencies, args.python_version)
        for name in FUNCTIONS:
            target = build(name, Path(args.out), dependencies)
            print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}  "
                  f"{target.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
