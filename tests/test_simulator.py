"""The Replicate simulator speaks what the project uses of Replicate's HTTP API, as documented."""


import httpx
import pytest
import replicate
from replicate.exceptions import ReplicateError
from replicate.webhook import Webhooks, WebhookSigningSecret

from devserver.replicate_sim import IDM_VTON_VERSION, Simulator, parse_duration
from tests.conftest import PERSON, SIM_TOKEN, wait_until

INPUT = {"human_img": "https://example.com/me.png", "garm_img": "https://example.com/shirt.png",
         "garment_des": "shirt", "category": "upper_body"}


@pytest.fixture
def client(sim):
    return replicate.Client(api_token=SIM_TOKEN, base_url=sim.url)


def raw(sim, method, path, **kwargs):
    headers = {"Authorization": f"Bearer {SIM_TOKEN}", **kwargs.pop("headers", {})}
    return httpx.request(method, sim.url + path, headers=headers, timeout=10, **kwargs)


def test_a_prediction_goes_starting_processing_succeeded_with_every_documented_field(sim, client):
    sim.set_faults(duration_s=0.6)
    created = raw(sim, "POST", "/v1/predictions", json={"version": IDM_VTON_VERSION, "input": INPUT})
    assert created.status_code == 201
    body = created.json()
    assert {"id", "model", "version", "input", "output", "data_removed", "error", "status", "created_at", "urls"} <= set(body)
    assert body["status"] == "starting" and body["model"] == "cuuupid/idm-vton"
    assert set(body["urls"]) >= {"get", "cancel", "web"}
    wait_until(lambda: client.predictions.get(body["id"]).status == "processing", timeout=3)
    done = wait_until(lambda: (p := client.predictions.get(body["id"])).status == "succeeded" and p, timeout=5)
    assert done.output.startswith(sim.url + "/files/")
    image = httpx.get(done.output)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert done.metrics["predict_time"] > 0


@pytest.mark.parametrize("version", [IDM_VTON_VERSION, f"cuuupid/idm-vton:{IDM_VTON_VERSION}", "cuuupid/idm-vton"])
def test_every_documented_version_form_is_accepted(sim, version):
    assert raw(sim, "POST", "/v1/predictions", json={"version": version, "input": INPUT}).status_code == 201


def test_create_by_model_and_an_unknown_version(sim):
    assert raw(sim, "POST", "/v1/models/cuuupid/idm-vton/predictions", json={"input": INPUT}).status_code == 201
    bad = raw(sim, "POST", "/v1/predictions", json={"version": "f" * 64, "input": INPUT})
    assert bad.status_code == 422 and bad.json()["title"] == "Invalid version or not permitted"
    assert bad.headers["content-type"] == "application/problem+json"


def test_missing_inputs_are_a_422_with_invalid_fields(sim):
    reply = raw(sim, "POST", "/v1/predictions", json={"version": IDM_VTON_VERSION, "input": {"category": "hats"}})
    assert reply.status_code == 422
    assert {f["field"] for f in reply.json()["invalid_fields"]} == {"input.human_img", "input.garm_img", "input.category"}


def test_a_bad_token_is_a_401_problem(sim):
    reply = httpx.get(sim.url + "/v1/predictions", headers={"Authorization": "Bearer nope"})
    assert reply.status_code == 401
    assert reply.json() == {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}
    with pytest.raises(ReplicateError) as error:
        replicate.Client(api_token="nope", base_url=sim.url).predictions.list()
    assert error.value.status == 401


def test_list_is_newest_first_100_a_page_with_absolute_cursor_urls_and_created_after(sim, client):
    sim.set_faults(duration_s=100)
    ids = [raw(sim, "POST", "/v1/predictions", json={"version": IDM_VTON_VERSION, "input": INPUT}).json()["id"]
           for _ in range(130)]
    first = raw(sim, "GET", "/v1/predictions").json()
    assert [p["id"] for p in first["results"]] == ids[::-1][:100]
    assert first["next"].startswith(sim.url + "/v1/predictions?") and "cursor=" in first["next"]
    second = client.predictions.list(first["next"])
    assert [p.id for p in second.results] == ids[::-1][100:]
    assert second.next is None and second.previous
    middle = sim.predictions[ids[120]].created_at
    from datetime import datetime, timezone
    after = datetime.fromtimestamp(middle, timezone.utc).isoformat().replace("+00:00", "Z")
    recent = raw(sim, "GET", "/v1/predictions", params={"created_after": after}).json()
    assert [p["id"] for p in recent["results"]] == ids[:120:-1]


def test_cancel_and_cancel_after(sim):
    sim.set_faults(duration_s=30)
    made = raw(sim, "POST", "/v1/predictions", json={"version": IDM_VTON_VERSION, "input": INPUT}).json()
    canceled = raw(sim, "POST", f"/v1/predictions/{made['id']}/cancel").json()
    assert canceled["status"] == "canceled"
    timed = raw(sim, "POST", "/v1/predictions", json={"version": IDM_VTON_VERSION, "input": INPUT},
                headers={"Cancel-After": "5s"}).json()
    assert sim.predictions[timed["id"]].cancel_deadline - sim.predictions[timed["id"]].created_at == pytest.approx(5)
    assert raw(sim, "POST", "/v1/predictions", json={"version": IDM_VTON_VERSION, "input": INPUT},
               headers={"Cancel-After": "2s"}).status_code == 422
    assert [parse_duration(v) for v in ("30s", "5m", "1h", "2h30m", "90", "soon")] == [30, 300, 3600, 9000, 90, None]


def test_outputs_expire_after_the_ttl_like_replicates_data_retention(sim, client):
    sim.output_ttl_s = 0.3
    made = raw(sim, "POST", "/v1/predictions", json={"version": IDM_VTON_VERSION, "input": INPUT}).json()
    done = wait_until(lambda: (p := client.predictions.get(made["id"])).status == "succeeded" and p)
    assert httpx.get(done.output).status_code == 200
    gone = wait_until(lambda: (p := raw(sim, "GET", f"/v1/predictions/{made['id']}").json())["data_removed"] and p)
    assert gone["output"] is None and gone["input"] == {}
    assert httpx.get(done.output).status_code == 404


def test_webhooks_are_signed_so_that_the_replicate_client_validates_them(sim, fn):
    import http.server
    import json
    import threading

    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        raw(sim, "POST", "/v1/predictions", json={"version": IDM_VTON_VERSION, "input": INPUT,
                                                 "webhook": f"http://127.0.0.1:{server.server_address[1]}/hook",
                                                 "webhook_events_filter": ["completed"]})
        wait_until(lambda: received, timeout=5)
    finally:
        server.shutdown()
    headers, body = received[0]
    secret = raw(sim, "GET", "/v1/webhooks/default/secret").json()["key"]
    assert secret.startswith("whsec_")
    Webhooks.validate(headers=headers, body=body, secret=WebhookSigningSecret(key=secret), tolerance=300)
    assert json.loads(body)["status"] == "succeeded"
    assert len(received) == 1  # only the completed event was asked for


def test_the_documented_webhook_test_vector_verifies():
    sim = Simulator(webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    try:
        signature = sim.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    finally:
        sim.server.server_close()
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_output_is_the_garment_composited_onto_the_person(sim, client):
    from io import BytesIO

    from PIL import Image

    made = raw(sim, "POST", "/v1/predictions", json={"version": IDM_VTON_VERSION, "input": {
        **INPUT, "human_img": PERSON, "garm_img": _red_garment()}}).json()
    done = wait_until(lambda: (p := client.predictions.get(made["id"])).status == "succeeded" and p)
    image = Image.open(BytesIO(httpx.get(done.output).content)).convert("RGB")
    assert image.size == (768, 1024)
    assert image.getpixel((384, 400))[0] > 180 and image.getpixel((384, 400))[1] < 80  # red garment on the torso
    assert image.getpixel((20, 20)) == (230, 200, 180)  # the person photo around it


def _red_garment():
    from tests.conftest import data_uri, png_bytes
    return data_uri(png_bytes((220, 20, 20), (40, 40)))
