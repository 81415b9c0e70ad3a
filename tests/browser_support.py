"""What the browser tests share: Debian's Chromium through Playwright, test pictures, axe-core
from npm (installed once into a cache folder), screenshots, and answers for `page.route`.

Test modules import the fixtures they use from here (pytest finds fixtures in a module's
namespace)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SCREENS = Path(__file__).resolve().parent.parent / ".screens"
AXE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tryon-tests" / "axe"
AXE_JS = AXE_CACHE / "node_modules" / "axe-core" / "axe.min.js"

needs_chromium = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason="Debian's Chromium is not installed (apt-get install -y chromium); .ci/run installs it"),
]


def picture(path, colour, size, garment=False, fmt="PNG"):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (255, 255, 255) if garment else colour)
    if garment:
        ImageDraw.Draw(image).rectangle((size[0] // 5, size[1] // 6, size[0] * 4 // 5, size[1] * 5 // 6), fill=colour)
    image.save(path, fmt)
    return str(path)


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


def open_page(browser, viewport=None, **options):
    """A fresh browser profile (its own localStorage: its own anonymous user)."""
    context = browser.new_context(viewport=viewport or DESKTOP, accept_downloads=True, **options)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.console_errors = []

    def on_console(message):
        if message.type != "error":
            return
        # A backend without GET /status?mine=true answers 400; the page then lists this browser's
        # own looks. Chromium logs the 400 anyway.
        if "mine=true" in (message.location or {}).get("url", "") and "status of 400" in message.text:
            return
        page.console_errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    return page


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


def sim_faults(devserver, **faults):
    requests.post(devserver.sim_url + "/_sim/faults", json=faults, timeout=10).raise_for_status()


def fill_look(page, images, garments=("shirt", "skirt")):
    page.get_by_test_id("person-input").set_input_files(images["person"])
    page.get_by_test_id("garment-input").first.set_input_files(images[garments[0]])
    for index, name in enumerate(garments[1:], start=1):
        page.get_by_test_id("add-garment").click()
        page.get_by_test_id("garment-input").nth(index).set_input_files(images[name])
        page.get_by_test_id("garment-category").nth(index).select_option("lower_body")
    page.wait_for_function("!document.querySelector('[data-testid=start]').disabled")


def wait_status(page, status):
    page.wait_for_function(f"document.querySelector('[data-testid=progress]').dataset.status === '{status}'")


def screenshot(page, name):
    SCREENS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=False)


# --- axe-core ------------------------------------------------------------------------------------

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


def serious_violations(page, axe_source) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, one line each."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_source)
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in found if v["impact"] in ("serious", "critical")]


# --- answers as the contract shapes them, for `page.route` ---------------------------------------

def fulfil_json(route, body, status=200):
    route.fulfill(status=status, content_type="application/json", body=json.dumps(body),
                  headers={"Access-Control-Allow-Origin": "*"})
