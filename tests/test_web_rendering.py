"""Rendering tests: how the page draws exact API answers that are slow or random to reach end to
end (every error_code in both languages with the model's words; a given percent and time left).
`page.route` answers /start, /status and /continue with JSON shaped exactly as the contract
says; the page itself comes from the devserver. The same features run against the real backend
in test_web_page.py (a failed step in Russian, the model's words), test_web_look.py (the
progress bar) and test_web_life.py (My looks, share links)."""

import io
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser_support import fill_look, fulfil_json, needs_chromium, screenshot

# The browser fixtures (browser, page, phone, images, axe_source): one Chromium for the session.
pytest_plugins = ["tests.browser_fixtures"]

pytestmark = needs_chromium

TASK = "5b0c7c1e-8d4e-4a57-9a51-0d6f7d7f2a11"
OTHER = "9a3e1f52-1c2b-4e0e-8f7a-3c4d5e6f7a8b"


def png(colour=(120, 140, 200), size=(300, 400)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def look_view(status, current_step, total_steps=2, task_id=TASK, images_base="", **extra):
    """A status body as the contract shapes it (with `actions`, as this backend adds)."""
    done = current_step if status in ("waiting_continue", "completed") else current_step - 1
    steps = []
    for n in range(1, total_steps + 1):
        step_status = "succeeded" if n <= done else status if n == current_step else "pending"
        if status == "processing" and n == current_step:
            step_status = "processing"
        steps.append({"step": n, "status": step_status, "garment": None,
                      "image_url": f"{images_base}/fake/step-{n}.png" if n <= done else None,
                      "prediction_id": None, "error": None, "started_at": "2026-11-27T10:00:00Z",
                      "completed_at": None})
    last = f"{images_base}/fake/step-{done}.png" if done else None
    actions = {"pending": ["cancel"], "processing": ["cancel"], "waiting_continue": ["continue", "finish"],
               "failed": ["retry", "finish"] if done else ["retry"], "completed": []}[status]
    return {"task_id": task_id, "status": status, "current_step": current_step, "total_steps": total_steps,
            "intermediate_result": last, "result_url": last if status == "completed" else None,
            "error_message": None, "created_at": "2026-11-27T10:00:00Z", "updated_at": "2026-11-27T10:01:00Z",
            "actions": actions, "steps": steps, **extra}


def serve_fake_images(page):
    page.route(re.compile(r"/fake/step-\d+\.png$"), lambda route: route.fulfill(
        status=200, content_type="image/png", body=png()))


def answer_status(page, answer):
    """Every GET /status goes to answer(query) -> (status code, body)."""
    def handle(route, request):
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        code, body = answer(query)
        fulfil_json(route, body, code)
    page.route(re.compile(r"/status\?"), handle)


@pytest.mark.parametrize("lang, sentence, button", [
    ("ru", "Шаг 1 шёл слишком долго и был остановлен. Нажмите «Повторить», чтобы запустить его снова.", "Повторить"),
    ("en", "Step 1 took too long and was stopped. Press “Retry” to run it again.", "Retry"),
])
def test_rendering_an_error_code_as_a_sentence_with_the_models_words_in_small_print(page, devserver, lang, sentence, button):
    failed = look_view("failed", 1, error_code="step_timeout", error_detail="Timed out after 600 s in queue",
                       error_message="Step 1 took longer than 10 minutes and was stopped. Press Retry to run it again.")
    answer_status(page, lambda q: (200, failed) if q.get("task_id") == TASK else (400, {"error": "x", "code": "missing_field"}))
    page.goto(f"{devserver.url}/?task={TASK}&lang={lang}")
    page.get_by_test_id("retry").wait_for(state="visible")
    assert page.locator("#error-text").inner_text() == sentence
    assert page.get_by_test_id("retry").inner_text() == button
    detail = page.locator("#error-detail")
    assert detail.is_hidden()  # folded: the shopper's language first
    page.locator("#error-more summary").click()
    assert detail.inner_text() == "Timed out after 600 s in queue"
    assert detail.evaluate("el => el.tagName") == "SMALL"
    screenshot(page, f"render-failed-detail-{lang}")


def test_rendering_progress_and_time_left_and_the_total_estimate(page, devserver, images):
    polls = []

    def status(query):
        polls.append(query)
        progress = {"percent": 40, "elapsed_s": 20, "eta_s": 30} if len(polls) < 3 else \
                   {"percent": None, "elapsed_s": 45, "eta_s": 15}
        return 200, look_view("processing", 1, progress=progress)

    answer_status(page, status)
    page.route(re.compile(r"/start$"), lambda route: fulfil_json(route, {
        "task_id": TASK, "status": "pending", "current_step": 0, "total_steps": 2, "estimated_time_seconds": 150}))
    page.goto(devserver.url + "/")
    fill_look(page, images)
    page.get_by_test_id("start").click()
    bar = page.get_by_test_id("step-progress")
    page.wait_for_function("document.querySelector('[data-testid=step-progress]').getAttribute('aria-valuenow') === '40'")
    assert bar.get_attribute("role") == "progressbar"
    assert page.locator("#eta").inner_text() == "Осталось около 30 с"
    assert page.locator("#estimate").inner_text() == "Весь образ займёт около 3 мин."
    screenshot(page, "render-progress-ru")
    # No percent from the model's logs: elapsed and eta still place the bar (45 of 60 s).
    page.wait_for_function("document.querySelector('[data-testid=step-progress]').getAttribute('aria-valuenow') === '75'")
    assert page.locator("#eta").inner_text() == "Осталось около 15 с"
