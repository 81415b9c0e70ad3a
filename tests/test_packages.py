"""`make package`: each dist/<function>.zip unpacked on its own runs `index.handler` against the
database, importing the shared/ inside the zip (not the repository's)."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from deploy import package
from tests.conftest import look

RUN_HANDLER = """
import json, sys
import index, shared
event = json.loads(sys.argv[1])
response = index.handler(event, None)
print(json.dumps({"shared": shared.__file__, "status": response["statusCode"], "body": json.loads(response["body"])}))
"""


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    return {name: package.build(name, out) for name in package.FUNCTIONS}


def run_unpacked(zip_path, folder, event) -> dict:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(folder)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", RUN_HANDLER, json.dumps(event)], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_zip_holds_its_index_a_copy_of_shared_its_bytecode_and_the_requirements(zips):
    modules = sorted(p.stem for p in (package.ROOT / "shared").glob("*.py"))
    tag = sys.implementation.cache_tag
    for name, path in zips.items():
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            assert "index.py" in names and "requirements.txt" in names
            assert archive.read("index.py") == (package.ROOT / "functions" / name / "index.py").read_bytes()
            assert sorted(n[len("shared/"):-len(".py")] for n in names
                          if n.startswith("shared/") and n.endswith(".py")) == modules
            # This Python's bytecode for each module, and nothing else (no stray timestamped .pyc).
            assert sorted(n for n in names if "__pycache__" in n) == sorted(
                [f"__pycache__/index.{tag}.pyc"] + [f"shared/__pycache__/{m}.{tag}.pyc" for m in modules])


def test_an_unpacked_zip_loads_its_bytecode_from_a_read_only_folder(zips, env, tmp_path):
    """As on Lambda (/var/task is read-only): Python can write no __pycache__ there, so the zip's
    own bytecode must be what it loads. A line added to the source afterwards stays unseen: the
    .pyc is an unchecked-hash one, loaded without comparing it with the source."""
    from tests.conftest import make_event

    with zipfile.ZipFile(zips["status"]) as archive:
        archive.extractall(tmp_path)
    with (tmp_path / "shared" / "view.py").open("a") as source:
        source.write("\nraise RuntimeError('compiled from source')\n")
    for path in (tmp_path, *tmp_path.rglob("*")):
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        event = make_event("GET", query={"task_id": "00000000-0000-4000-8000-000000000000"}, headers={"X-User-Id": "r"})
        result = subprocess.run([sys.executable, "-c", RUN_HANDLER, json.dumps(event)], cwd=tmp_path,
                                env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == 404
    finally:
        for path in (tmp_path, *tmp_path.rglob("*")):
            path.chmod(path.stat().st_mode | 0o200)


def test_zips_are_reproducible(zips, tmp_path):
    again = package.build("status", tmp_path)
    assert again.read_bytes() == zips["status"].read_bytes()


@pytest.mark.parametrize("name,method,body,query,status", [
    ("start", "POST", look(1), None, 200),
    ("worker", "GET", None, None, 200),
    ("checker", "GET", None, None, 200),
    ("continue_", "POST", {"task_id": "00000000-0000-4000-8000-000000000000"}, None, 404),
    ("status", "GET", None, {"task_id": "00000000-0000-4000-8000-000000000000"}, 404),
])
def test_an_unpacked_zip_runs_its_handler_against_the_database(zips, env, tmp_path, name, method, body, query, status):
    from tests.conftest import make_event

    event = make_event(method, body=body, headers={"X-User-Id": "zip-user"}, query=query)
    result = run_unpacked(zips[name], tmp_path, event)
    assert result["shared"].startswith(str(tmp_path))  # the zip's own copy
    assert result["status"] == status, result["body"]


def test_the_unpacked_start_and_status_see_the_same_task(zips, env, tmp_path):
    from tests.conftest import make_event

    created = run_unpacked(zips["start"], tmp_path / "start", make_event("POST", body=look(2), headers={"X-User-Id": "z"}))
    task_id = created["body"]["task_id"]
    seen = run_unpacked(zips["status"], tmp_path / "status",
                        make_event("GET", query={"task_id": task_id}, headers={"X-User-Id": "z"}))
    assert (seen["status"], seen["body"]["status"], seen["body"]["total_steps"]) == (200, "pending", 2)


# --- AWS Lambda zips (`make package-lambda`): the dependencies inside, boto3 left to the runtime ---

LAMBDA_ZIP_LIMIT = 8_000_000  # bytes (issue 13: "Lambda zips <= 8 MB without boto3")


def test_lambda_requirements_leave_boto3_to_the_runtime_unless_asked():
    without = package.lambda_requirements(with_boto3=False)
    assert {pin.split("==")[0] for pin in without} == {"psycopg2-binary", "requests"}
    assert {pin.split("==")[0] for pin in package.lambda_requirements(with_boto3=True)} == {
        "psycopg2-binary", "requests", "boto3"}


def test_make_passes_with_boto3_through():
    def dry_run(*args):
        return subprocess.run(["make", "-n", "package-lambda", *args], cwd=package.ROOT, capture_output=True,
                              text=True, timeout=60).stdout
    assert "--with-boto3" not in dry_run()
    assert "--with-dependencies --with-boto3" in dry_run("WITH_BOTO3=1")


def test_with_boto3_needs_with_dependencies(capsys):
    with pytest.raises(SystemExit):
        package.main(["--with-boto3", "--out", "/nonexistent"])
    assert "--with-dependencies" in capsys.readouterr().err


def test_slim_keeps_versions_and_licenses_and_drops_what_only_pip_reads(tmp_path):
    info = tmp_path / "demo-1.2.dist-info"
    (info / "licenses").mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo\nVersion: 1.2\n\n# Demo\n" + "long readme\n" * 500)
    (info / "RECORD").write_text("demo/__init__.py,,\n")
    (info / "licenses" / "LICENSE").write_text("MIT")
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "__init__.py").write_text("X = 1\n")
    (tmp_path / "demo" / "__init__.pyi").write_text("X: int\n")
    (tmp_path / "demo" / "py.typed").write_text("")
    package.slim(tmp_path)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["demo-1.2.dist-info/METADATA", "demo-1.2.dist-info/licenses/LICENSE", "demo/__init__.py"]
    assert (info / "METADATA").read_text() == "Metadata-Version: 2.1\nName: demo\nVersion: 1.2\n"


@pytest.fixture(scope="module")
def lambda_zip(tmp_path_factory):
    """A Lambda zip for this interpreter's Python, so it can run here (the default is the runtime's 3.12)."""
    dependencies = tmp_path_factory.mktemp("lambda-deps")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        package.install_dependencies(dependencies, version)
    except subprocess.CalledProcessError as error:
        pytest.skip(f"pip could not fetch the manylinux wheels (no package index reachable): {error}")
    return package.build("status", tmp_path_factory.mktemp("lambda-dist"), dependencies)


def test_lambda_zip_is_under_8_mb_without_boto3(lambda_zip):
    names = zipfile.ZipFile(lambda_zip).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {"psycopg2", "requests", "certifi", "shared"} <= tops
    assert not {top for top in tops if top.startswith(("boto3", "botocore", "s3transfer", "replicate", "httpx",
                                                      "pydantic"))}
    assert not [name for name in names if name.endswith("__mypyc.so") or "/md.cpython" in name]
    assert not [name for name in names if name.startswith("bin/") or name.endswith("/mypy.py")]
    assert [name for name in names if name.startswith("shared/") and name.endswith(".pyc")]
    assert lambda_zip.stat().st_size <= LAMBDA_ZIP_LIMIT, lambda_zip.stat().st_size


RUN_ISOLATED = """
import importlib.metadata, json, sys
import index, psycopg2, requests, shared
event = json.loads(sys.argv[1])
response = index.handler(event, None)
print(json.dumps({"paths": [m.__file__ for m in (shared, psycopg2, requests)],
                  "requests_version": importlib.metadata.version("requests"),
                  "status": response["statusCode"], "body": json.loads(response["body"])}))
"""


def test_an_unpacked_lambda_zip_runs_on_its_own_dependencies(lambda_zip, env, tmp_path):
    """-S: no site-packages at all, so every import comes from inside the zip."""
    from tests.conftest import make_event

    with zipfile.ZipFile(lambda_zip) as archive:
        archive.extractall(tmp_path)
    event = make_event("GET", query={"task_id": "00000000-0000-4000-8000-000000000000"}, headers={"X-User-Id": "l"})
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-S", "-c", RUN_ISOLATED, json.dumps(event)], cwd=tmp_path,
                            env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(path.startswith(str(tmp_path)) for path in seen["paths"]), seen["paths"]
    assert f"requests=={seen['requests_version']}" in package.lambda_requirements(with_boto3=False)
    assert (seen["status"], seen["body"]["code"]) == (404, "task_not_found"), seen["body"]


def test_bytecode_is_compiled_by_the_runtimes_python_or_left_out(monkeypatch, tmp_path):
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert package.runtime_python(this) == sys.executable
    # A python3.99 on PATH that really is one, and a pyenv-style shim whose Python is not installed.
    real, shim, broken = tmp_path / "python3.99", tmp_path / "python3.98", tmp_path / "python3.96"
    real.write_text("#!/bin/sh\necho 3.99\n")
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.98: command not found' >&2; exit 127\n")
    broken.write_text("#!/no/such/interpreter\n")  # executable, but cannot be run: an OSError
    for path in (real, shim, broken):
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert package.runtime_python("3.99") == str(real)
    assert package.runtime_python("3.98") is None  # a zip without bytecode, and a note saying why
    assert package.runtime_python("3.97") is None
    assert package.runtime_python("3.96") is None
