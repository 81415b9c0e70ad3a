"""A second shopper's walk (QA screenshots s2, s3, s10 and friends), each finding fixed in web/ and
kept fixed here, end to end against the devserver in Chromium: requests sent again after the
connection drops, a share link that no longer works, the language, focus after the look's
buttons, focus rings, a 320 px phone, a step the shopper stopped, Back on the full-size viewer."""

import contextlib
import json

import pytest
import requests

from tests.browser_support import (
    fill_look,
    in_viewport,
    needs_chromium,
    open_page,
    open_ready_look,
    sim_faults,
    wait_status,
)

# The browser fixtures (browser, page, phone, images, axe_source): one Chromium for the session.
pytest_plugins = ["tests.browser_fixtures"]

pytestmark = needs_chromium

NETWORK = {"ru": "Нет связи с сервером. Пробуем ещё раз…", "en": "No connection to the server. Trying again…"}


def home(devserver, lang):
    return devserver.url + ("/?lang=en" if lang == "en" else "/")


def error_text_is(page, text):
    page.wait_for_function("(text) => document.querySelector('#error-text').textContent === text", arg=text)


def my_looks(page, devserver):
    user = page.evaluate("localStorage.getItem('tryon.user')")
    reply = requests.get(devserver.url + "/status", params={"mine": "true"}, headers={"X-User-Id": user}, timeout=10)
    reply.raise_for_status()
    return reply.json()["looks"]


def slow_first_retry(page, seconds=600, give_up_after=None):
    """The page's back-off made long (or its give-up short), so that only what a test does sends
    a request again."""
    config = {"retryPauseSeconds": seconds}
    if give_up_after is not None:
        config["retrySeconds"] = give_up_after
    page.add_init_script(f"window.TRYON_CONFIG = {json.dumps(config)};")


# --- 1. a button's request is sent again when the connection comes back -------------------------

@pytest.mark.parametrize("lang", ["ru", "en"])
def test_a_start_sent_offline_goes_out_again_with_its_key_when_the_browser_is_back_online(page, devserver, images,
                                                                                         lang):
    slow_first_retry(page)  # no timer would send it again within the test: only the `online` event
    page.goto(home(devserver, lang))
    fill_look(page, images, garments=("shirt",))
    keys = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/start")
            and keys.append(r.headers["idempotency-key"]))
    page.context.set_offline(True)
    page.get_by_test_id("start").click()
    error_text_is(page, NETWORK[lang])
    assert page.get_by_test_id("start").is_disabled()  # no second look from a second press meanwhile
    page.context.set_offline(False)  # the browser fires `online`
    wait_status(page, "completed")
    assert page.get_by_test_id("error").is_hidden()
    assert len(keys) >= 1 and len(set(keys)) == 1
    assert len(my_looks(page, devserver)) == 1


def test_a_start_whose_answer_was_lost_is_sent_again_and_makes_one_look(page, devserver, images):
    page.goto(devserver.url + "/")
    fill_look(page, images, garments=("shirt",))
    keys = []

    def lose_answers(route, request):
        keys.append(request.headers["idempotency-key"])
        if len(keys) == 1:
            route.fetch()  # the look is made, but its answer never reaches the page
            route.abort("connectionreset")
        elif len(keys) == 2:
            route.fulfill(status=502, body="Bad Gateway")
        else:
            route.continue_()

    page.route("**/start", lose_answers)
    page.get_by_test_id("start").click()
    wait_status(page, "completed")
    assert len(keys) == 3 and len(set(keys)) == 1
    assert len(my_looks(page, devserver)) == 1
    assert page.get_by_test_id("error").is_hidden()


@pytest.mark.parametrize(("code", "retry_after", "shown"), [
    ("not_configured", "60", "The service is not configured yet."),  # waits for the operator: said at once
    ("database_unavailable", "600", "The server is not answering right now. Trying again…"),
])
def test_a_503_waits_for_its_retry_after_and_wrong_settings_are_not_tried_again(page, devserver, images, code,
                                                                                retry_after, shown):
    slow_first_retry(page, seconds=0.05)
    page.goto(devserver.url + "/?lang=en")
    fill_look(page, images, garments=("shirt",))
    sent = []

    def unavailable(route, request):
        sent.append(request)
        route.fulfill(status=503, content_type="application/json", headers={"Retry-After": retry_after},
                      body=json.dumps({"error": "The service is not configured yet.", "code": code}))

    page.route("**/start", unavailable)
    page.get_by_test_id("start").click()
    error_text_is(page, shown)
    page.wait_for_timeout(500)  # ten of the page's 50 ms pauses: without either rule it would have sent it again
    assert len(sent) == 1
    assert page.get_by_test_id("start").is_disabled() == (code != "not_configured")


def test_an_embed_with_an_older_index_html_still_makes_a_look(page, devserver, images):
    """lang-switch, notice and hint came later: a site whose copy of index.html lacks them."""
    import re

    html = requests.get(devserver.url + "/", timeout=10).text
    html = re.sub(r'<nav class="lang-switch".*?</nav>', "", html, flags=re.S)
    html = re.sub(r'<p class="(notice|hint)"[^>]*></p>', "", html)
    assert 'id="notice"' not in html and 'id="hint"' not in html and "lang-switch" not in html
    page.route(devserver.url + "/", lambda route, request: route.fulfill(status=200, content_type="text/html",
                                                                        body=html))
    open_ready_look(page, devserver, images)
    page.get_by_test_id("continue").click()
    wait_status(page, "completed")
    assert page.console_errors == []


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_after_two_minutes_without_a_connection_the_page_asks_to_press_again(page, devserver, images, lang):
    slow_first_retry(page, seconds=0.2, give_up_after=1)  # config: two minutes shortened to one second
    page.goto(home(devserver, lang))
    fill_look(page, images, garments=("shirt",))
    sent = []

    def offline(route, request):
        sent.append(request)
        route.abort("internetdisconnected")

    page.route("**/start", offline)
    page.get_by_test_id("start").click()
    gave_up = {"ru": "Связь с сервером так и не появилась. Проверьте интернет и нажмите «Создать образ» ещё раз.",
               "en": "The connection to the server did not come back. Check your internet and press “Create look” again."}
    error_text_is(page, gave_up[lang])
    assert len(sent) >= 2  # it was sent again before the page gave up
    assert page.get_by_test_id("start").is_enabled()
    page.unroute("**/start")
    page.get_by_test_id("start").click()
    wait_status(page, "completed")


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_a_continue_sent_offline_goes_out_again_when_the_browser_is_back_online(page, devserver, images, lang):
    slow_first_retry(page)
    open_ready_look(page, devserver, images, lang)
    posts = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/continue") and posts.append(r.post_data_json))
    page.context.set_offline(True)
    page.get_by_test_id("continue").click()
    error_text_is(page, NETWORK[lang])
    page.context.set_offline(False)
    wait_status(page, "completed")
    assert page.get_by_test_id("error").is_hidden()
    assert posts[-1]["action"] == "continue"


def test_a_continue_whose_answer_was_lost_is_sent_again_and_applied_once(page, devserver, images):
    """The first Continue reached the server but its answer was lost; by the time the page sends it
    again, step 2 is ready. Sent with the position it was pressed at (step 1, attempt 1), it is a
    409 that changes nothing, which the page takes as done: a 3-garment look does not skip step 2."""
    slow_first_retry(page)  # the page sends it again only when the test says it is online again
    page.goto(devserver.url + "/")
    fill_look(page, images, garments=("shirt", "skirt", "shirt"))
    page.get_by_test_id("start").click()
    page.get_by_test_id("continue").wait_for(state="visible")
    task_id = page.url.split("task=")[1].split("&")[0]
    user = page.evaluate("localStorage.getItem('tryon.user')")

    def look():
        return requests.get(devserver.url + "/status", params={"task_id": task_id}, headers={"X-User-Id": user},
                            timeout=10).json()

    def lose_answer(route, request):
        route.fetch()
        route.abort("connectionreset")

    page.route("**/continue", lose_answer, times=1)
    sent, answers = [], []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/continue") and sent.append(r.post_data_json))
    page.on("response", lambda r: r.request.method == "POST" and r.url.endswith("/continue") and answers.append(r.status))
    page.get_by_test_id("continue").click()
    error_text_is(page, NETWORK["ru"])
    for _ in range(600):
        if look()["status"] == "waiting_continue" and look()["current_step"] == 2:
            break
        page.wait_for_timeout(50)
    assert (look()["status"], look()["current_step"]) == ("waiting_continue", 2)
    page.context.set_offline(True)
    page.context.set_offline(False)  # 'online': the page sends Continue again now
    page.wait_for_function("() => document.querySelector('[data-testid=progress]').textContent.includes('2 из 3')")
    assert [body["step"] for body in sent] == [1, 1] and all(body["attempt"] == 1 for body in sent)
    assert answers == [409]  # the lost answer never reached the page
    assert (look()["status"], look()["current_step"]) == ("waiting_continue", 2)
    assert page.get_by_test_id("error").is_hidden()


# --- 2. a share link that no longer works --------------------------------------------------------

@pytest.mark.parametrize("lang", ["ru", "en"])
def test_a_revoked_share_link_says_so_on_top_and_leaves_a_usable_form(phone, devserver, images, lang):
    query = "?lang=en&" if lang == "en" else "?"
    phone.goto(f"{devserver.url}/{query}share=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    notice = phone.get_by_test_id("notice")
    notice.wait_for(state="visible")
    assert notice.inner_text() == {"ru": "Эта ссылка больше не действует. Ниже можно собрать свой образ.",
                                   "en": "This link no longer works. You can make your own look below."}[lang]
    assert in_viewport(phone, notice)
    assert phone.evaluate("document.activeElement.id") == "notice"
    assert phone.locator("#announce").text_content() == notice.inner_text()
    assert "share=" not in phone.url
    fill_look(phone, images, garments=("shirt",))  # waits for Create to be enabled
    phone.get_by_test_id("start").click()
    wait_status(phone, "completed")
    assert notice.is_hidden()
    assert phone.console_errors == [
        "Failed to load resource: the server responded with a status of 404 (Not Found)"]


# --- 3. language ---------------------------------------------------------------------------------

@pytest.mark.parametrize("query,locale,languages,expected", [
    ("?lang=EN", "ru-RU", None, "en"),
    ("?lang=en-US", "ru-RU", None, "en"),
    ("?lang=Ru", "en-US", None, "ru"),
    ("", "en-US", None, "en"),
    ("", "ru-RU", None, "ru"),
    ("", "de-DE", ["de-DE", "en-GB", "ru"], "ru"),  # Russian among the preferred: the page's own
    ("", "fr-FR", ["fr-FR", "en"], "en"),
])
def test_the_language_follows_lang_in_any_case_then_the_browser(browser, devserver, query, locale, languages, expected):
    page = open_page(browser, locale=locale)
    try:
        if languages is not None:
            page.add_init_script(f"Object.defineProperty(navigator, 'languages', {{get: () => {json.dumps(languages)}}});")
        page.goto(devserver.url + "/" + query)
        assert page.evaluate("document.documentElement.lang") == expected
        assert page.get_by_test_id("start").inner_text() == {"ru": "Создать образ", "en": "Create look"}[expected]
        assert page.locator(f"[data-testid=lang-{expected}]").get_attribute("aria-current") == "true"
    finally:
        page.context.close()


def test_the_language_switch_works_from_the_keyboard_and_keeps_the_look(page, devserver, images):
    open_ready_look(page, devserver, images)
    task = page.url.split("task=")[1]
    page.get_by_test_id("lang-en").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**lang=en**")
    page.get_by_test_id("continue").wait_for(state="visible")
    assert f"task={task}" in page.url
    assert page.get_by_test_id("progress").inner_text() == "Step 1 of 2 is ready!"
    assert page.get_by_role("navigation", name="Language").count() == 1
    # Remembered in this browser: the page without ?lang stays English.
    page.goto(devserver.url + "/")
    assert page.get_by_test_id("start").inner_text() == "Create look"
    page.get_by_test_id("lang-ru").click()
    page.wait_for_url("**lang=ru**")
    assert page.get_by_test_id("start").inner_text() == "Создать образ"
    assert page.console_errors == []


# --- 4. focus after the look's buttons -----------------------------------------------------------

def active(page):
    return page.evaluate("document.activeElement && (document.activeElement.id || document.activeElement.tagName)")


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_focus_moves_to_the_look_after_create_and_continue_and_to_the_form_after_new_look(page, devserver, images,
                                                                                        lang):
    page.goto(home(devserver, lang))
    fill_look(page, images)
    page.get_by_test_id("start").focus()
    page.keyboard.press("Enter")
    page.get_by_test_id("continue").wait_for(state="visible")
    assert active(page) == "progress"
    page.get_by_test_id("continue").focus()
    page.keyboard.press("Enter")
    wait_status(page, "completed")
    assert active(page) == "progress"
    page.get_by_test_id("new-look").focus()
    page.keyboard.press("Enter")
    page.wait_for_function("!location.search.includes('task=')")
    assert active(page) == "person-file"
    # New look on a look that waits: the question first, then the form.
    fill_look(page, images)
    page.get_by_test_id("start").click()
    page.get_by_test_id("continue").wait_for(state="visible")
    page.get_by_test_id("new-look").click()
    page.get_by_test_id("confirm").click()
    page.wait_for_function("!location.search.includes('task=')")
    assert active(page) == "person-file"


# --- 5. focus rings ------------------------------------------------------------------------------

RING = """() => {
  const el = document.activeElement;
  const ring = el.matches('.file-button input') ? el.parentElement.querySelector('span') : el;
  const style = getComputedStyle(ring);
  let behind = ring.parentElement, bg = null;
  for (; behind; behind = behind.parentElement) {
    const c = getComputedStyle(behind).backgroundColor;
    if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') { bg = c; break; }
  }
  return {name: el.id || el.dataset.testid || el.className || el.tagName, style: style.outlineStyle,
          width: parseFloat(style.outlineWidth), offset: parseFloat(style.outlineOffset),
          color: style.outlineColor, bg: bg || getComputedStyle(document.documentElement).backgroundColor || 'rgb(255, 255, 255)'};
}"""


def rgba(text):
    parts = [float(x) for x in text[text.index("(") + 1:-1].split(",")]
    return parts + [1.0] * (4 - len(parts))


def luminance(rgb):
    def channel(c):
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg_text, bg_text):
    bg = rgba(bg_text)
    bg = [c * bg[3] + 255 * (1 - bg[3]) for c in bg[:3]]  # a translucent bar over the white card
    fg = rgba(fg_text)
    fg = [f * fg[3] + b * (1 - fg[3]) for f, b in zip(fg[:3], bg)]
    light, dark = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def rings_by_tab(page):
    found = {}
    for _ in range(60):
        page.keyboard.press("Tab")
        ring = page.evaluate(RING)
        if ring["name"] in found or ring["name"] == "BODY":
            break
        found[ring["name"]] = ring
    return found


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_every_focus_ring_is_solid_and_at_least_3_to_1(page, devserver, images, lang):
    page.goto(home(devserver, lang))
    idle = rings_by_tab(page)
    assert {"lang-en", "person-file", "person-url", "add-garment"} <= set(idle)
    open_ready_look(page, devserver, images, lang)
    page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
    ready = rings_by_tab(page)
    assert {"continue", "finish", "download", "share", "new-look", "compare"} <= set(ready)
    weak = {name: (ring, round(contrast(ring["color"], ring["bg"]), 2)) for name, ring in {**idle, **ready}.items()
            if ring["style"] != "solid" or ring["width"] < 2 or ring["offset"] < 1
            or contrast(ring["color"], ring["bg"]) < 3}
    assert weak == {}


# --- 6. a 320 px phone ---------------------------------------------------------------------------

@contextlib.contextmanager
def phone_with_a_ready_step(browser, devserver, images, lang, viewport):
    page = open_page(browser, viewport, is_mobile=True, has_touch=True)
    try:
        open_ready_look(page, devserver, images, lang)
        page.locator("#step-image:not([hidden])").wait_for()
        yield page
    finally:
        page.context.close()


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_a_ready_step_on_a_320_px_phone_does_not_scroll_sideways(browser, devserver, images, lang):
    with phone_with_a_ready_step(browser, devserver, images, lang, {"width": 320, "height": 640}) as page:
        assert page.get_by_test_id("finish").is_visible() and page.get_by_test_id("download").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        assert page.console_errors == []


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_on_a_phone_held_sideways_the_image_is_seen_whole_and_no_button_covers_it(browser, devserver, images, lang):
    with phone_with_a_ready_step(browser, devserver, images, lang, {"width": 844, "height": 390}) as page:
        stage = page.locator(".result > .stage")
        page.evaluate("document.querySelector('.result > .stage').scrollIntoView({block: 'start'})")
        box = stage.bounding_box()
        assert box["height"] <= 390 and in_viewport(page, stage), box
        actions = page.locator(".actions").bounding_box()
        assert actions["y"] >= box["y"] + box["height"], (actions, box)  # below the image, not over it
        page.get_by_test_id("continue").scroll_into_view_if_needed()
        assert in_viewport(page, page.get_by_test_id("continue"))


# --- 7. a step the shopper stopped ---------------------------------------------------------------

@pytest.mark.parametrize("lang", ["ru", "en"])
def test_a_stopped_step_is_said_plainly_with_what_the_buttons_do(page, devserver, images, lang):
    open_ready_look(page, devserver, images, lang)
    sim_faults(devserver, duration_s=30)
    try:
        page.get_by_test_id("continue").click()
        wait_status(page, "processing")
        page.get_by_test_id("cancel").click()
        wait_status(page, "failed")
    finally:
        sim_faults(devserver, duration_s=None)
    progress = page.get_by_test_id("progress")
    assert progress.inner_text() == {"ru": "Вы остановили шаг 2 из 2", "en": "You stopped step 2 of 2"}[lang]
    assert page.evaluate("getComputedStyle(document.querySelector('#progress')).color") != "rgb(179, 38, 30)"
    assert page.get_by_test_id("error").is_hidden()  # no red alert for the shopper's own choice
    assert page.get_by_test_id("hint").inner_text() == {
        "ru": "Нажмите «Повторить», чтобы запустить шаг 2 заново, или «Завершить здесь», "
              "чтобы оставить образ таким, каким он был после шага 1.",
        "en": "Press “Retry” to run step 2 again, or “Finish here” to keep the look as it was after step 1.",
    }[lang]
    assert page.get_by_test_id("retry").is_visible() and page.get_by_test_id("finish").is_visible()
    page.get_by_test_id("retry").click()
    wait_status(page, "completed")
    assert page.get_by_test_id("hint").is_hidden()
    assert page.console_errors == []


# --- 8. Back on the full-size viewer -------------------------------------------------------------

def test_back_on_a_phone_closes_the_full_size_viewer_and_stays_on_the_page(phone, devserver, images):
    open_ready_look(phone, devserver, images)
    here = phone.url
    phone.get_by_test_id("step-thumb").first.click()
    viewer = phone.locator("#viewer")
    assert viewer.is_visible()
    phone.go_back()
    viewer.wait_for(state="hidden")
    assert phone.url == here
    assert phone.get_by_test_id("continue").is_visible()
    # Closed by its button: the viewer's history entry goes with it.
    length = phone.evaluate("history.length")
    phone.get_by_test_id("step-thumb").first.click()
    assert viewer.is_visible()
    phone.locator("#viewer-close").click()
    viewer.wait_for(state="hidden")
    phone.wait_for_function("history.state === null")
    assert phone.url == here
    assert phone.evaluate("history.length") == length  # the entry it took is reused, not one more each time
    assert phone.console_errors == []


# --- 9. words ------------------------------------------------------------------------------------

def test_the_leave_look_question_is_good_russian(page, devserver, images):
    open_ready_look(page, devserver, images)
    page.get_by_test_id("new-look").click()
    assert page.locator("#confirm-text").inner_text() == (
        "Этот образ ещё не завершён. Он останется в «Моих образах», и к нему можно вернуться. Начать новый?")


def test_a_readable_picture_named_heic_is_taken_like_any_other(page, devserver, images, tmp_path):
    import shutil

    named = tmp_path / "IMG_0043.HEIC"  # a JPEG or PNG that only its name calls HEIC
    shutil.copy(images["person"], named)
    page.goto(home(devserver, "en"))
    page.get_by_test_id("person-input").set_input_files(str(named))
    page.locator("#person-picker img").wait_for()
    assert page.locator("#person-error").is_hidden()


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_a_heic_photo_is_explained_with_the_iphone_setting(page, devserver, images, lang):
    page.goto(home(devserver, lang))
    page.get_by_test_id("person-input").set_input_files(images["heic"])
    message = page.locator("#person-error")
    message.wait_for(state="visible")
    assert message.inner_text() == {
        "ru": "Формат HEIC не поддерживается — сохраните «IMG_0042.HEIC» как JPEG "
              "(на iPhone: Настройки → Камера → Форматы → «Наиболее совместимый»).",
        "en": "HEIC is not supported: save “IMG_0042.HEIC” as JPEG "
              "(on an iPhone: Settings → Camera → Formats → “Most Compatible”).",
    }[lang]
