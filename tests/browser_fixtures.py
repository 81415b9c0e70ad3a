"""Fixtures of the browser tests, loaded by each browser test module as a plugin
(`pytest_plugins = ["tests.browser_fixtures"]`) so that the session ones exist once per run:
Debian's Chromium through Playwright, test pictures, and axe-core from npm (installed once into
a cache folder; no CDN)."""

import shutil
import subprocess

import pytest

from tests.browser_support import AXE_CACHE, AXE_JS, CHROMIUM, PHONE, open_page, picture


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    heic = folder / "IMG_0042.HEIC"
    # What an iPhone hands over: an ISO-BMFF 'ftypheic' box; Chromium cannot decode it.
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    return {
        "person": picture(folder / "person.png", (214, 190, 170), (1800, 2400)),
        "shirt": picture(folder / "shirt.png", (40, 90, 200), (500, 500), garment=True),
        "skirt": picture(folder / "skirt.png", (200, 40, 60), (500, 500), garment=True),
        "tiny": picture(folder / "tiny.png", (10, 200, 10), (10, 10)),
        "heic": str(heic),
    }


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-gpu", "--no-first-run"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, devserver):
    page = open_page(browser)
    yield page
    page.context.close()


@pytest.fixture
def phone(browser, devserver):
    page = open_page(browser, PHONE, is_mobile=True, has_touch=True)
    yield page
    page.context.close()


@pytest.fixture(scope="session")
def axe_source():
    """axe-core 4 from npm, installed once into a cache folder (no CDN: the tests run offline
    once it is there)."""
    if not AXE_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed, so axe-core cannot be fetched (apt-get install -y npm)")
        AXE_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--prefix", str(AXE_CACHE), "--no-audit", "--no-fund", "axe-core@4"],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not AXE_JS.exists():
            pytest.skip(f"npm could not install axe-core: {done.stderr.strip()[-300:]}")
    return AXE_JS.read_text()
