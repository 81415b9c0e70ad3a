"""Helpers the browser tests share: pages in Debian's Chromium, filling the form, waiting for a
status, screenshots, axe-core's findings, and JSON answers for `page.route`. The fixtures are in
tests/browser_fixtures.py."""

from __future__ import annotations

import json
import os
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


def open_page(browser, viewport=None, **options):
    """A fresh browser profile (its own localStorage: its own anonymous user), a Russian-speaking
    shopper's unless `locale` says otherwise (the page picks English only for browsers that prefer
    no Russian at all)."""
    options.setdefault("locale", "ru-RU")
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


def in_viewport(page, locator) -> bool:
    """The element is wholly on screen, without scrolling."""
    box = locator.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


def open_ready_look(page, devserver, images, lang="ru"):
    """A new 2-garment look made in the page, its step 1 ready (Continue on show)."""
    page.goto(devserver.url + ("/?lang=en" if lang == "en" else "/"))
    fill_look(page, images)
    page.get_by_test_id("start").click()
    page.get_by_test_id("continue").wait_for(state="visible")


def wait_status(page, status):
    page.wait_for_function(f"document.querySelector('[data-testid=progress]').dataset.status === '{status}'")


def screenshot(page, name):
    SCREENS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=False)


# --- axe-core ------------------------------------------------------------------------------------

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
