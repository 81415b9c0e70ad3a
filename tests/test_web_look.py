"""The page as a shopper lives it (issue 11), end to end against the devserver in Chromium:
one look per click, New look asks first and keeps the old look reachable, picker errors beside
their picker, the phone's action bar, compare, full-size steps, and what a screen reader hears."""

import re

from tests.browser_support import (
    PHONE,
    fill_look,
    in_viewport,
    needs_chromium,
    open_ready_look,
    sim_faults,
    wait_status,
)

# The browser fixtures (browser, page, phone, images, axe_source): one Chromium for the session.
pytest_plugins = ["tests.browser_fixtures"]

pytestmark = needs_chromium


def starts_of(page):
    sent = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/start") and sent.append(r))
    return sent


def test_a_double_click_on_create_starts_one_look_and_create_stays_off_after_finish(page, devserver, images):
    page.goto(devserver.url + "/")
    fill_look(page, images)
    sent = starts_of(page)
    page.get_by_test_id("start").dblclick()
    page.get_by_test_id("finish").wait_for(state="visible")
    page.get_by_test_id("start").click(force=True)  # a third click on the locked form
    assert len(sent) == 1
    assert re.fullmatch(r"[0-9a-f-]{36}", sent[0].headers["idempotency-key"])
    assert page.get_by_test_id("start").is_disabled()
    page.get_by_test_id("finish").click()
    wait_status(page, "completed")
    assert page.get_by_test_id("start").is_disabled()
    page.get_by_test_id("start").click(force=True)
    assert len(sent) == 1
    assert page.console_errors == []


def test_create_stays_off_after_cancel_and_retry(page, devserver, images):
    sim_faults(devserver, duration_s=30)
    try:
        page.goto(devserver.url + "/")
        fill_look(page, images, garments=("shirt",))
        sent = starts_of(page)
        page.get_by_test_id("start").click()
        wait_status(page, "processing")
        page.get_by_test_id("cancel").click()
        wait_status(page, "failed")
        assert page.get_by_test_id("start").is_disabled()
        page.get_by_test_id("retry").click()
        wait_status(page, "processing")
        assert page.get_by_test_id("start").is_disabled()
        assert len(sent) == 1
    finally:
        sim_faults(devserver, duration_s=None)


def test_a_resent_submission_reuses_its_idempotency_key_and_a_changed_form_gets_a_new_one(page, devserver, images):
    page.add_init_script("window.TRYON_CONFIG = {retryPauseSeconds: 0.1};")
    page.goto(devserver.url + "/")
    fill_look(page, images, garments=("shirt",))
    keys = []
    lost = [2]

    def drop(route, request):
        keys.append(request.headers["idempotency-key"])
        if lost[0] > 0:
            lost[0] -= 1
            route.abort("connectionreset")  # the network lost the request: the page sends it again
        else:
            route.continue_()

    page.route("**/start", drop)
    page.get_by_test_id("start").click()
    wait_status(page, "completed")
    assert len(keys) == 3 and len(set(keys)) == 1
    # A form changed while the page waits to send it again is a new submission: a new key.
    page.get_by_test_id("new-look").click()
    fill_look(page, images, garments=("shirt",))
    keys.clear()
    lost[0] = 10**6
    page.get_by_test_id("start").click()
    page.wait_for_function("document.querySelector('#error-text').textContent.includes('Нет связи')")
    page.get_by_test_id("garment-category").first.select_option("dresses")
    page.wait_for_function("!document.querySelector('[data-testid=start]').disabled")  # the old one dropped
    lost[0] = 0
    page.get_by_test_id("start").click()
    wait_status(page, "completed")
    assert len(set(keys[:-1])) == 1
    assert keys[-1] != keys[0]


def test_three_new_looks_then_a_fourth_starts_and_all_four_stay_reachable_in_my_looks(page, devserver, images):
    # MAX_ACTIVE_TASKS_PER_USER is 3: looks waiting for their shopper must not count against it.
    page.goto(devserver.url + "/")
    tasks = []
    for _ in range(4):
        fill_look(page, images)
        page.get_by_test_id("start").click()
        page.get_by_test_id("continue").wait_for(state="visible")
        tasks.append(page.url.split("task=")[1])
        if len(tasks) == 4:
            break
        page.get_by_test_id("new-look").click()
        # The look waits for its shopper: the page asks in-page before leaving it.
        page.get_by_test_id("confirm").click()
        page.wait_for_function("!location.search.includes('task=')")
        assert page.get_by_test_id("step-image").is_hidden()
    assert len(set(tasks)) == 4
    items = page.get_by_test_id("looks").get_by_test_id("look-item")
    page.wait_for_function("document.querySelectorAll('[data-testid=look-item]').length === 4")
    assert [items.nth(i).get_attribute("data-task") for i in range(4)] == tasks[::-1]
    items.nth(3).get_by_test_id("look-open").click()  # the first look, still waiting at step 1
    page.get_by_test_id("confirm").click()  # leaving the fourth, which waits too
    page.get_by_test_id("continue").wait_for(state="visible")
    page.wait_for_function(f"location.search.endsWith('task={tasks[0]}')")
    assert page.get_by_test_id("progress").inner_text() == "Шаг 1 из 2 готов!"
    # The form shows what this look is made of, locked.
    assert page.locator("#person-picker .preview img").count() == 1
    assert page.locator(".garment .preview img").count() == 2
    assert page.console_errors == []


def test_staying_on_a_waiting_look_keeps_it(page, devserver, images):
    open_ready_look(page, devserver, images)
    task = page.url
    page.get_by_test_id("new-look").click()
    assert page.locator("#confirm-dialog").is_visible()
    page.keyboard.press("Escape")
    assert page.locator("#confirm-dialog").is_hidden()
    assert page.url == task
    assert page.get_by_test_id("continue").is_visible()


def test_a_too_small_photo_is_refused_beside_its_picker(page, devserver, images):
    page.goto(devserver.url + "/")
    sent = starts_of(page)
    page.get_by_test_id("person-input").set_input_files(images["tiny"])
    message = page.locator("#person-error")
    message.wait_for(state="visible")
    assert message.inner_text() == (
        "Картинка слишком маленькая: 10×10 пикселей. Нужно не меньше 256 пикселей по каждой стороне.")
    page.get_by_test_id("garment-input").first.set_input_files(images["shirt"])
    assert page.get_by_test_id("start").is_disabled()
    assert sent == []


def test_a_heic_photo_gets_its_own_message(page, devserver, images):
    page.goto(devserver.url + "/?lang=en")
    page.get_by_test_id("garment-input").first.set_input_files(images["heic"])
    message = page.locator(".garment .picker-error")
    message.wait_for(state="visible")
    assert message.inner_text() == ("HEIC is not supported: save “IMG_0042.HEIC” as JPEG "
                                    "(on an iPhone: Settings → Camera → Formats → “Most Compatible”).")


def test_a_link_with_a_login_in_it_is_explained(page, devserver, images):
    page.goto(devserver.url + "/")
    link = page.locator("#person-url")
    link.fill("https://shopper:secret@photos.example.com/me.jpg")
    link.blur()
    message = page.locator("#person-error")
    message.wait_for(state="visible")
    assert message.inner_text() == "В ссылке есть логин или пароль. Нужна открытая ссылка на картинку — без них."
    link.fill("https://photos.example.com/me.jpg")
    assert message.is_hidden()


def test_on_a_phone_a_bad_garment_file_is_explained_on_screen_beside_it(phone, devserver, images):
    phone.goto(devserver.url + "/")
    phone.get_by_test_id("person-input").set_input_files(images["person"])
    for _ in range(3):
        phone.get_by_test_id("add-garment").click()
    phone.get_by_test_id("garment-input").nth(3).set_input_files(images["heic"])
    row = phone.locator(".garment").nth(3)
    message = row.locator(".picker-error")
    message.wait_for(state="visible")
    phone.wait_for_function("() => { const r = document.querySelectorAll('.garment .picker-error')[3]"
                            ".getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }")
    assert in_viewport(phone, message)
    assert message.get_attribute("id") in row.get_by_test_id("garment-input").get_attribute("aria-describedby")


def test_on_a_phone_continue_finish_and_download_are_on_screen_when_a_step_is_ready(phone, devserver, images):
    open_ready_look(phone, devserver, images)
    phone.evaluate("window.scrollTo(0, 0)")
    for name in ("continue", "finish", "download"):
        assert in_viewport(phone, phone.get_by_test_id(name)), name
    phone.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # the form and my looks below
    phone.evaluate("window.scrollTo(0, 400)")
    assert in_viewport(phone, phone.get_by_test_id("continue"))
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert phone.console_errors == []


def test_compare_slides_between_the_person_photo_and_the_step(page, devserver, images):
    open_ready_look(page, devserver, images)
    compare = page.get_by_test_id("compare")
    assert compare.is_visible()
    before = page.locator("#before-image")
    assert before.is_hidden()  # at 0 the step image is shown whole
    compare.fill("60")
    assert before.is_visible()
    assert before.get_attribute("src").startswith("data:image/jpeg")
    assert page.evaluate("getComputedStyle(document.querySelector('#before-image')).clipPath") == "inset(0px 40% 0px 0px)"
    # The kept photo is the person's, not the step's.
    colour = page.evaluate("""() => { const img = document.querySelector('#before-image');
        const c = document.createElement('canvas'); c.width = c.height = 1;
        c.getContext('2d').drawImage(img, img.naturalWidth / 2, img.naturalHeight / 2, 1, 1, 0, 0, 1, 1);
        return Array.from(c.getContext('2d').getImageData(0, 0, 1, 1).data.slice(0, 3)); }""")
    assert all(abs(a - b) <= 6 for a, b in zip(colour, (214, 190, 170))), colour


def test_a_step_thumbnail_opens_full_size_with_its_own_download(page, devserver, images):
    open_ready_look(page, devserver, images)
    step_one = page.get_by_test_id("step-image").get_attribute("src")
    page.get_by_test_id("continue").click()
    wait_status(page, "completed")
    thumbs = page.get_by_test_id("step-thumb")
    assert thumbs.count() == 2
    assert thumbs.first.get_attribute("aria-label") == "Шаг 1: открыть целиком"
    thumbs.first.click()
    viewer = page.locator("#viewer")
    assert viewer.is_visible()
    assert page.locator("#viewer-image").get_attribute("src") == step_one
    with page.expect_download() as download_info:
        page.get_by_test_id("viewer-download").click()
    assert download_info.value.suggested_filename == "look-step-1.png"
    with open(download_info.value.path(), "rb") as saved:
        assert saved.read().startswith(b"\x89PNG")
    page.keyboard.press("Escape")
    assert viewer.is_hidden()


def test_every_control_says_which_picker_it_belongs_to(page, devserver):
    page.goto(devserver.url + "/")
    page.get_by_test_id("add-garment").click()
    assert page.get_by_label("Выбрать файл: ваше фото").count() == 1
    assert page.get_by_label("Выбрать файл: вещь 2").count() == 1
    assert page.get_by_role("combobox", name="Категория: вещь 1").count() == 1
    assert page.get_by_role("button", name="Убрать вещь 2").count() == 1
    # Link fields have labels of their own, not just placeholders.
    visible_labels = page.locator("label[for]", has_text="Или ссылка на картинку (https://)")
    assert visible_labels.count() == 3
    for i in range(3):
        assert page.locator(f"#{visible_labels.nth(i).get_attribute('for')}").get_attribute("type") == "url"
    assert page.get_by_label("Ссылка на картинку: вещь 2").count() == 1
    assert page.locator("input[placeholder]").count() == 0
    page.get_by_role("button", name="Убрать вещь 1").click()
    assert page.get_by_role("button", name="Убрать вещь 2").count() == 0
    assert page.get_by_label("Выбрать файл: вещь 1").count() == 1


def test_steps_heading_is_english_in_english_mode(page, devserver, images):
    page.goto(devserver.url + "/?lang=en")
    fill_look(page, images, garments=("shirt",))
    page.get_by_test_id("start").click()
    wait_status(page, "completed")
    assert page.get_by_role("list", name="Steps").count() == 1
    assert "Шаг" not in page.locator("body").inner_text()


def test_the_live_region_announces_state_changes_not_polls(page, devserver, images):
    sim_faults(devserver, duration_s=7)
    try:
        page.goto(devserver.url + "/")
        page.evaluate("""() => { window.announced = [];
            new MutationObserver(() => window.announced.push(document.querySelector('#announce').textContent))
              .observe(document.querySelector('#announce'), {childList: true, characterData: true, subtree: true}); }""")
        polls = []
        page.on("request", lambda r: "force_check=true" in r.url and polls.append(r.url))  # the page's polls
        fill_look(page, images)
        page.get_by_test_id("start").click()
        page.get_by_test_id("continue").wait_for(state="visible", timeout=60_000)
        announced = page.evaluate("window.announced")
        assert len(polls) >= 3
        assert announced[-1] == "Шаг 1 из 2 готов!"
        assert len(announced) == len(set(announced)) <= 3, announced  # queued, running, ready: once each
        assert page.locator("[aria-live]").count() == 1
    finally:
        sim_faults(devserver, duration_s=None)


def test_a_running_step_shows_a_progress_bar(page, devserver, images):
    sim_faults(devserver, duration_s=8)
    try:
        page.goto(devserver.url + "/")
        fill_look(page, images, garments=("shirt",))
        page.get_by_test_id("start").click()
        wait_status(page, "processing")
        bar = page.get_by_test_id("step-progress")
        assert bar.is_visible()
        assert bar.get_attribute("role") == "progressbar"
        # This backend has no `progress` yet: the bar runs on the start call's estimate.
        page.wait_for_function("document.querySelector('[data-testid=step-progress]').hasAttribute('aria-valuenow')")
        assert 0 <= int(bar.get_attribute("aria-valuenow")) <= 95
        assert page.locator("#estimate").inner_text().startswith("Весь образ займёт около")
        page.get_by_test_id("cancel").click()
        wait_status(page, "failed")
        assert bar.is_hidden()
    finally:
        sim_faults(devserver, duration_s=None)
