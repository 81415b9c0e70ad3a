"""The simulator knows IDM-VTON's and nano-banana's schemas as Replicate does, prints IDM-VTON's
progress while it runs, and has the fault knobs other tests need (slow drip, lost creates)."""

import re
import socket
from io import BytesIO

import httpx
import pytest
import replicate

from devserver.replicate_sim import IDM_VTON_VERSION
from tests.conftest import PERSON, SIM_TOKEN, wait_until

IDM_INPUT = {"human_img": "https://example.com/me.png", "garm_img": "https://example.com/shirt.png",
             "garment_des": "shirt", "category": "upper_body", "crop": False, "seed": 42, "steps": 30,
             "force_dc": False, "mask_only": False}
NANO = "/v1/models/google/nano-banana/predictions"
TQDM = re.compile(r"^ *(\d+)%\|[█ ]{10}\| (\d+)/(\d+) \[\d\d:\d\d<\d\d:\d\d, +\d+\.\d+it/s\]$")


def raw(sim, method, path, **kwargs):
    headers = {"Authorization": f"Bearer {SIM_TOKEN}", **kwargs.pop("headers", {})}
    return httpx.request(method, sim.url + path, headers=headers, timeout=10, **kwargs)


def finished(sim, prediction_id):
    return wait_until(lambda: (p := raw(sim, "GET", f"/v1/predictions/{prediction_id}").json())["status"] == "succeeded" and p)


def test_idm_vton_takes_every_documented_input_and_sets_predict_time(sim):
    made = raw(sim, "POST", "/v1/predictions", json={"version": IDM_VTON_VERSION, "input": IDM_INPUT})
    assert made.status_code == 201
    done = finished(sim, made.json()["id"])
    assert isinstance(done["output"], str) and done["metrics"]["predict_time"] > 0


def test_idm_vton_logs_grow_with_tqdm_progress_while_it_runs(sim):
    sim.set_faults(duration_s=3)
    made = raw(sim, "POST", "/v1/predictions", json={"version": IDM_VTON_VERSION, "input": {**IDM_INPUT, "steps": 20}}).json()
    mid_run = wait_until(lambda: (p := raw(sim, "GET", f"/v1/predictions/{made['id']}").json())["status"] == "processing"
                         and TQDM.search(p["logs"].splitlines()[-1]) and p, timeout=10)
    percent, done, total = TQDM.search(mid_run["logs"].splitlines()[-1]).groups()
    assert total == "20" and 0 < int(done) < 20 and int(percent) == int(done) * 100 // 20
    final = finished(sim, made["id"])
    counts = [int(m[2]) for line in final["logs"].splitlines() if (m := TQDM.search(line))]
    assert counts == sorted(counts) and counts[-1] == 20 and len(counts) >= 3
    assert _tqdm(12, 30, 4.1) == " 40%|████      | 12/30 [00:04<00:06,  2.9it/s]"


def _tqdm(done, total, elapsed):
    from devserver.replicate_sim.simulator import tqdm_line

    return tqdm_line(done, total, elapsed).rstrip("\n")


def test_nano_banana_runs_only_through_its_models_endpoint_and_returns_one_image_uri(sim):
    model_input = {"prompt": "Put the red shirt on the person; keep the face, pose and background",
                   "image_input": [PERSON, PERSON], "output_format": "png"}
    made = raw(sim, "POST", NANO, json={"input": model_input})
    assert made.status_code == 201 and made.json()["model"] == "google/nano-banana" and made.json()["version"] == "hidden"
    done = finished(sim, made.json()["id"])
    assert isinstance(done["output"], str) and done["output"].endswith(".png")
    assert done["metrics"]["predict_time"] > 0
    assert "%|" not in done["logs"]  # no progress printed
    image = httpx.get(done["output"])
    assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG")
    for version in ("google/nano-banana", "google/nano-banana:" + "a" * 64):
        refused = raw(sim, "POST", "/v1/predictions", json={"version": version, "input": model_input})
        assert refused.status_code == 422 and refused.json()["title"] == "Invalid version or not permitted"


def test_nano_banana_writes_jpg_unless_asked_for_png(sim):
    done = finished(sim, raw(sim, "POST", NANO, json={"input": {"prompt": "a dress"}}).json()["id"])
    image = httpx.get(done["output"])
    assert done["output"].endswith(".jpg") and image.headers["content-type"] == "image/jpeg"
    from PIL import Image

    assert Image.open(BytesIO(image.content)).format == "JPEG"


def test_a_missing_prompt_is_the_422_replicate_documents(sim):
    reply = raw(sim, "POST", NANO, json={"input": {"image_input": ["https://example.com/a.png"]}})
    assert reply.status_code == 422 and reply.headers["content-type"] == "application/problem+json"
    assert reply.json() == {"title": "Input validation failed", "detail": "- input: prompt is required\n", "status": 422,
                            "invalid_fields": [{"type": "required", "field": "input.prompt",
                                                "description": "prompt is required"}]}


@pytest.mark.parametrize("path, body, field", [
    (NANO, {"input": {"prompt": "x", "human_img": "https://a/b.png"}}, "input.human_img"),
    (NANO, {"input": {"prompt": "x", "output_format": "webp"}}, "input.output_format"),
    (NANO, {"input": {"prompt": "x", "image_input": "https://a/b.png"}}, "input.image_input"),
    (NANO, {"input": {"prompt": 5}}, "input.prompt"),
    ("/v1/predictions", {"version": IDM_VTON_VERSION, "input": {**IDM_INPUT, "prompt": "x"}}, "input.prompt"),
    ("/v1/predictions", {"version": IDM_VTON_VERSION, "input": {**IDM_INPUT, "steps": "30"}}, "input.steps"),
    ("/v1/predictions", {"version": IDM_VTON_VERSION, "input": {**IDM_INPUT, "crop": "yes"}}, "input.crop"),
])
def test_unknown_or_mistyped_fields_are_a_422_naming_the_field(sim, path, body, field):
    reply = raw(sim, "POST", path, json=body)
    assert reply.status_code == 422
    assert [f["field"] for f in reply.json()["invalid_fields"]] == [field]
    assert sim.stats["predictions_created"] == 0


def test_a_custom_model_takes_any_input_object(sim):
    made = raw(sim, "POST", "/v1/predictions", json={"version": "acme/fit-model:v7", "input": {"anything": [1, 2]}})
    assert made.status_code == 201 and made.json()["model"] == "acme/fit-model"
    assert finished(sim, made.json()["id"])["output"].startswith(sim.url + "/files/")
    assert raw(sim, "POST", "/v1/models/acme/fit-model/predictions", json={"input": {}}).status_code == 404


def test_slow_drip_sends_headers_then_one_byte_at_a_time(sim):
    sim.set_faults(slow_drip_s=0.05)
    with httpx.stream("POST", sim.url + "/v1/predictions", json={"version": IDM_VTON_VERSION, "input": IDM_INPUT},
                      headers={"Authorization": f"Bearer {SIM_TOKEN}"}, timeout=10) as response:
        assert response.status_code == 201
        received = b""
        for chunk in response.iter_raw():
            received += chunk
            if len(received) >= 5:
                break
    # A byte every 50 ms: a busy reader may get two at once, but never the body in one piece.
    assert 5 <= len(received) < int(response.headers["content-length"])
    assert sim.stats["predictions_created"] == 1  # created before the slow answer: a caller that gives up leaves it


def test_create_then_fail_creates_the_prediction_but_answers_the_failure(sim):
    sim.set_faults(create_then_fail=[{"status": 502}])
    hook = "http://127.0.0.1:9/hook?task=t-1&attempt=2"
    reply = raw(sim, "POST", "/v1/predictions", json={"version": IDM_VTON_VERSION, "input": IDM_INPUT, "webhook": hook})
    assert reply.status_code == 502
    listed = httpx.get(sim.url + "/_sim/predictions").json()
    assert len(listed) == 1 and listed[0]["sim_webhook"] == hook and listed[0]["sim_input"] == IDM_INPUT
    client = replicate.Client(api_token=SIM_TOKEN, base_url=sim.url)
    assert [p.id for p in client.predictions.list().results] == [listed[0]["id"]]  # the list endpoint shows it


def test_a_content_length_that_is_not_a_size_is_a_400_from_the_simulator_too(sim):
    with socket.create_connection(("127.0.0.1", int(sim.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(f"POST /v1/predictions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SIM_TOKEN}\r\n"
                     "Content-Length: -1\r\n\r\n".encode())
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400")
