"""`make package`: dist/<function>.zip for each function, ready to upload.

Each zip holds the function's index.py at its root (entry point `index.handler`), a copy of
shared/ made from the repository at build time (never by hand), and the pinned requirements.txt.
Yandex Cloud Functions installs requirements.txt itself. AWS Lambda does not: with
`--with-dependencies` (`make package-lambda`) the zip also carries the dependencies, installed from
manylinux wheels for the Lambda runtime's Python. boto3 and botocore are left out (the Lambda
Python runtime ships them, and they are two thirds of the bytes); `--with-boto3`
(`make package-lambda WITH_BOTO3=1`) vendors them too, to pin the exact version.

Each zip also carries bytecode (`__pycache__/*.pyc`) for index.py and shared/, compiled by the
runtime's Python (`--python-version`, 3.12 as deploy.md's runtimes): Lambda's /var/task is
read-only, so without it every cold start compiles them from source. The .pyc files are
"unchecked hash" ones, which Python loads without comparing them with the source's time (an
unzipped file carries the zip's fixed time). A runtime of another Python version ignores them, so
they are compiled by this Python when it is that version, else by `python3.12` (etc.) on PATH,
else left out with a note. The vendored dependencies get none: their bytecode would add 2.5 MB.

Zips are reproducible: files in sorted order with a fixed timestamp, bytecode compiled with a
fixed hash seed, so an unchanged function builds to the same bytes (and a deploy tool can skip it).
"""

from __future__ import annotations

import argparse
import os
import shutil
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
    archive.writestr(info, path.read_bytes(), compresslevel=9)


def _files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path


def compile_bytecode(folder: Path, python: str = sys.executable) -> None:
    """__pycache__/<module>.<`python`'s tag>.pyc beside every .py under `folder`, unchecked
    hash. A fresh interpreter with a fixed hash seed compiles them: a set constant's order in the
    bytecode follows string hashes, which are random per process. no_debug_ranges leaves out the
    column ranges a traceback underlines with ^^^ (a fifth of the bytes)."""
    subprocess.run([python, "-X", "no_debug_ranges", "-m", "compileall", "-q", "-q",
                    "--invalidation-mode", "unchecked-hash", "-s", str(folder), str(folder)],
                   env={**os.environ, "PYTHONHASHSEED": "0"}, check=True)


def build(name: str, out_dir: Path, dependencies: Path | None = None,
          bytecode: str | None = sys.executable) -> Path:
    """`bytecode`: the interpreter that compiles it (the runtime's Python), None for none."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.zip"
    with tempfile.TemporaryDirectory() as scratch, zipfile.ZipFile(target, "w") as archive:
        code = Path(scratch)
        shutil.copy(ROOT / "functions" / name / "index.py", code / "index.py")
        # The repository's own __pycache__ (timestamped, from tests and the devserver) stays out.
        shutil.copytree(ROOT / "shared", code / "shared", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        if bytecode:
            compile_bytecode(code, bytecode)
        for path in _files(code):
            _add(archive, path, path.relative_to(code).as_posix())
        _add(archive, ROOT / "requirements.txt", "requirements.txt")
        if dependencies is not None:
            for path in _files(dependencies):
                _add(archive, path, path.relative_to(dependencies).as_posix())
    return target


# Shipped by the AWS Lambda Python runtime; botocore, s3transfer and jmespath come only with boto3.
RUNTIME_PROVIDED = ("boto3",)
# In requirements.txt but imported by no function: Replicate's API goes over http.client
# (shared/plain_http.py) and the client is the tests' reference for it. Left out of Lambda zips,
# with its httpx and pydantic (about 3 MB); tests/test_structure.py checks that nothing imports it.
NOT_IMPORTED = ("replicate",)


def lambda_requirements(with_boto3: bool) -> list[str]:
    """requirements.txt's pinned lines that a function imports, without the packages the Lambda
    runtime provides unless `with_boto3`."""
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    pins = [line for line in lines if line and not line.startswith("#")]
    left_out = NOT_IMPORTED if with_boto3 else (*NOT_IMPORTED, *RUNTIME_PROVIDED)
    return [pin for pin in pins if pin.split("==")[0].strip().lower() not in left_out]


def _pip_install(folder: Path, python_version: str, platform: str, *args: str) -> None:
    subprocess.run([
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--target", str(folder), "--platform", platform, "--implementation", "cp",
        "--python-version", python_version, "--only-binary=:all:", "--no-compile", *args,
    ], check=True)


def install_dependencies(folder: Path, python_version: str, with_boto3: bool = False) -> None:
    _pip_install(folder, python_version, "manylinux2014_x86_64", *lambda_requirements(with_boto3))
    use_pure_python_wheels(folder, python_version)
    slim(folder)


# charset-normalizer's compiled wheel only speeds up guessing a text's encoding, which the
# functions never ask requests to do (every body is JSON or an image): its pure wheel is 70 KB
# against 300 KB.
PURE_PYTHON = ("charset_normalizer",)


def use_pure_python_wheels(folder: Path, python_version: str) -> None:
    for package in PURE_PYTHON:
        installed = sorted(folder.glob(f"{package}-*.dist-info"))
        if not installed:
            continue
        version = installed[0].name[len(package) + 1:-len(".dist-info")]
        for leftover in installed:
            shutil.rmtree(leftover)
        # --upgrade replaces the package's folder; mypyc's helper module sits beside it.
        _pip_install(folder, python_version, "any", "--no-deps", "--upgrade", f"{package}=={version}")
        for helper in folder.glob("*__mypyc*.so"):
            helper.unlink()


# Plugins only mypy loads (pydantic/mypy.py, pydantic/v1/mypy.py).
TYPE_CHECKER_PLUGINS = ("mypy.py",)


def slim(folder: Path) -> None:
    """Drop what only pip and type checkers read: RECORD, stubs, mypy plugins, console scripts
    (bin/, whose first line names the build machine's Python), and the long description in
    METADATA (importlib.metadata reads only its headers). Licenses stay."""
    shutil.rmtree(folder / "bin", ignore_errors=True)
    for path in list(folder.rglob("*")):
        if not path.is_file():
            continue
        in_dist_info = path.parent.name.endswith(".dist-info")
        if (path.suffix == ".pyi" or path.name == "py.typed" or (in_dist_info and path.name == "RECORD")
                or path.name in TYPE_CHECKER_PLUGINS):
            path.unlink()
        elif in_dist_info and path.name == "METADATA":
            headers = path.read_text(encoding="utf-8").split("\n\n", 1)[0]
            path.write_text(headers + "\n", encoding="utf-8")


def _this_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def runtime_python(version: str) -> str | None:
    """An interpreter of the runtime's Python `version`: this one, or a python<version> on PATH
    that runs and is that version (a pyenv shim may name one that is not installed)."""
    if version == _this_python():
        return sys.executable
    found = shutil.which(f"python{version}")
    if found is None:
        return None
    try:
        asked = subprocess.run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):  # broken or hanging: no bytecode, and the note says so
        return None
    return found if asked.returncode == 0 and asked.stdout.strip() == version else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build dist/<function>.zip for each function.")
    parser.add_argument("--out", default=str(ROOT / "dist"))
    parser.add_argument("--with-dependencies", action="store_true", help="vendor the dependencies (AWS Lambda)")
    parser.add_argument("--with-boto3", action="store_true",
                        help="with --with-dependencies: vendor boto3/botocore too (the Lambda runtime ships them)")
    parser.add_argument("--python-version", default="3.12",
                        help="the runtime's Python: the dependencies' wheels (Lambda) and the bytecode")
    args = parser.parse_args(argv)
    if args.with_boto3 and not args.with_dependencies:
        parser.error("--with-boto3 needs --with-dependencies")
    with tempfile.TemporaryDirectory() as scratch:
        dependencies = None
        if args.with_dependencies:
            dependencies = Path(scratch)
            install_dependencies(dependencies, args.python_version, args.with_boto3)
        # The runtime runs --python-version: bytecode of another Python would be bytes it ignores.
        bytecode = runtime_python(args.python_version)
        if bytecode is None:
            print(f"note: no bytecode in the zips: this is Python {_this_python()}, the runtime "
                  f"{args.python_version}, and there is no python{args.python_version} on PATH to compile it",
                  file=sys.stderr)
        for name in FUNCTIONS:
            target = build(name, Path(args.out), dependencies, bytecode)
            print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}  "
                  f"{target.stat().st_size / 1e6:.2f} MB ({target.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
