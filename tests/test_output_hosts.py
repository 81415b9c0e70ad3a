"""Output downloads go only where a step's image may be: https on Replicate's delivery domains, the
storage's host or OUTPUT_HOSTS, public addresses only, at every redirect hop (issue 12 item 7)."""

import http.server
import socket
import threading
import typing

import pytest

from shared import checking
from shared.downloads import download
from shared.images import DownloadError
from shared.output_hosts import OutputHosts
from shared.replicate_api import Prediction
from shared.settings import load
from shared.states import ErrorCode
from shared.storage import LocalStorage
from shared.task import Task
from tests.conftest import png_bytes


class _Redirects(http.server.BaseHTTPRequestHandler):
    """/hop/N redirects to /hop/N-1; /hop/0 is the image; /away redirects to `target`."""

    target: typing.ClassVar[str] = ""
    seen: typing.ClassVar[list] = []

    def do_GET(self):
        self.seen.append(self.path)
        if self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            if left:
                return self._redirect(f"/hop/{left - 1}")
            image = png_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(image)))
            self.end_headers()
            self.wfile.write(image)
            return None
        return self._redirect(self.target)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _serve():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirects)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def redirects():
    _Redirects.seen = []
    server, base = _serve()
    inner, inner_base = _serve()  # another local origin: stands for anything on our network
    yield base, inner_base
    for each in (server, inner):
        each.shutdown()
        each.server_close()


def _refused(url: str, hosts: OutputHosts) -> DownloadError:
    with pytest.raises(DownloadError) as caught:
        download(url, max_bytes=1 << 20, hosts=hosts, timeout=5.0)
    assert caught.value.transient is False
    return caught.value


def test_a_redirect_to_another_local_address_is_refused_before_it_is_fetched(redirects):
    base, inner = redirects
    _Redirects.target = inner + "/hop/0"
    error = _refused(base + "/away", OutputHosts.of(base, None, ()))
    assert "not https" in str(error)
    assert _Redirects.seen == ["/away"]  # the inner server was never asked


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
    "https://169.254.169.254/latest/meta-data/",
    "https://example.com/x.png",                  # not an allowed host
    "file:///etc/passwd",
])
def test_a_redirect_off_the_allowed_hosts_fails_for_good(redirects, target):
    base, _ = redirects
    _Redirects.target = target
    _refused(base + "/away", OutputHosts.of(base, None, ()))
    assert _Redirects.seen == ["/away"]


def test_redirects_are_followed_at_most_five_times(redirects):
    base, _ = redirects
    hosts = OutputHosts.of(base, None, ())
    data, content_type = download(base + "/hop/5", max_bytes=1 << 20, hosts=hosts)
    assert content_type == "image/png" and data == png_bytes()
    _Redirects.seen.clear()
    assert "more than 5" in str(_refused(base + "/hop/6", hosts))
    assert len(_Redirects.seen) == 6


@pytest.mark.parametrize("base_url", ["", "https://api.replicate.com", "http://sim.example.com:8100"])
def test_the_simulators_origin_is_allowed_only_while_replicate_is_a_local_http_url(redirects, base_url):
    base, _ = redirects
    error = _refused(base + "/hop/0", OutputHosts.of(base_url, None, ()))
    assert "not https" in str(error)
    assert _Redirects.seen == []


def test_an_allowed_name_that_resolves_to_a_loopback_address_is_refused():
    hosts = OutputHosts.of("", "https://localhost/files", ("localhost",))
    assert "private address" in str(_refused("https://localhost/x.png", hosts))


@pytest.fixture
def resolver(monkeypatch):
    """Makes every name resolve to the given addresses (no DNS in tests)."""
    answers: list[str] = []

    def fake(host, port, *args, **kwargs):
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in answers]

    monkeypatch.setattr("shared.output_hosts.socket.getaddrinfo", fake)
    return answers


@pytest.mark.parametrize("addresses", [
    ["10.0.0.8"], ["192.168.1.1"], ["127.0.0.1"], ["169.254.169.254"], ["0.0.0.0"], ["::1"], ["fe80::1"],
    ["::ffff:127.0.0.1"], ["100.64.0.1"],
    ["151.101.1.1", "10.0.0.8"],  # every address counts, not the first
])
def test_a_delivery_host_resolving_to_any_non_public_address_is_refused(resolver, addresses):
    resolver.extend(addresses)
    hosts = OutputHosts.of("", None, ())
    with pytest.raises(DownloadError) as caught:
        hosts.check("https://pbxt.replicate.delivery/abc/out-0.png", 5.0)
    assert not caught.value.transient and "private address" in str(caught.value)


@pytest.mark.parametrize("url,allowed", [
    ("https://replicate.delivery/a.png", True),
    ("https://pbxt.replicate.delivery/a.png", True),
    ("https://evilreplicate.delivery/a.png", False),
    ("https://replicate.delivery.evil.com/a.png", False),
    ("http://pbxt.replicate.delivery/a.png", False),  # https only
    ("https://files.example.com/looks/a.png", True),  # the storage's public host
    ("https://cdn.example.org/a.png", True),           # OUTPUT_HOSTS
    ("https://other.example.org/a.png", False),
    ("https://pbxt.replicate.delivery:443/a.png", True),   # 443 named
    ("https://pbxt.replicate.delivery:8443/a.png", False),  # an allowed host's other ports are other services
    ("https://cdn.example.org:22/a.png", False),
    ("https://files.example.com:9000/looks/a.png", False),  # the storage's host, not its public URL's port
    ("https://pbxt.replicate.delivery:99999/a.png", False),  # no such port
    ("https://pbxt.replicate.delivery:x/a.png", False),
    ("https://pbxt.replicate.delivery:0/a.png", False),  # not "no port"
])
def test_allowed_hosts_are_replicates_the_storages_and_output_hosts(resolver, url, allowed):
    resolver.append("151.101.1.1")
    settings = load({"OUTPUT_HOSTS": " CDN.example.org , ", "REPLICATE_BASE_URL": ""})
    hosts = OutputHosts.of(settings.replicate_base_url, "https://files.example.com/looks", settings.output_hosts)
    if allowed:
        hosts.check(url, 5.0)
    else:
        with pytest.raises(DownloadError) as caught:
            hosts.check(url, 5.0)
        assert not caught.value.transient


def test_the_storages_public_url_may_name_its_own_port(resolver):
    resolver.append("151.101.1.1")
    hosts = OutputHosts.of("", "https://files.example.com:9443/looks", ())
    hosts.check("https://files.example.com:9443/looks/a.png", 5.0)
    hosts.check("https://files.example.com/looks/a.png", 5.0)  # its host on 443 too
    with pytest.raises(DownloadError) as caught:
        hosts.check("https://files.example.com:9444/looks/a.png", 5.0)
    assert not caught.value.transient and "port 9444" in str(caught.value)


def test_a_step_whose_output_redirects_to_the_metadata_service_fails_as_output_unusable(redirects, tmp_path):
    base, _ = redirects
    _Redirects.target = "https://169.254.169.254/latest/meta-data/"
    settings = load({"REPLICATE_BASE_URL": base, "STEP_TIMEOUT_S": "600"})
    storage = LocalStorage(str(tmp_path), "http://127.0.0.1:9/files")
    task = Task.from_row({"id": "00000000-0000-4000-8000-000000000000", "user_id": "u", "status": "processing",
                          "current_step": 1, "attempt": 1, "prediction_id": "p1", "person_image": "x",
                          "garments": "[]", "intermediate_result": None, "prompt_hints": None})
    prediction = Prediction.from_json({"id": "p1", "status": "succeeded", "output": base + "/away"})
    seen = checking._keep_output(settings, storage, task, prediction, 5.0)
    assert seen.error_code is ErrorCode.OUTPUT_UNUSABLE and seen.transient is None
    assert seen.failure and "169.254.169.254, which is not an allowed image host" in seen.failure
    assert not any(tmp_path.rglob("*.png"))  # nothing was stored


@pytest.mark.parametrize("url", ["https://user:secret@pbxt.replicate.delivery/a.png",
                                 "https://user@pbxt.replicate.delivery/a.png"])
def test_an_image_url_with_credentials_fails_for_good(resolver, url):
    """http.client takes the userinfo for part of the host: such a URL could never be fetched, and
    was a transient error, tried again at every check until the step's deadline."""
    resolver.append("151.101.1.1")
    with pytest.raises(DownloadError) as caught:
        download(url, max_bytes=1 << 20, hosts=OutputHosts.of("", None, ()), timeout=5.0)
    assert caught.value.transient is False and "credentials" in str(caught.value)


@pytest.mark.parametrize("url", ["https://pbxt.replicate.delivery/a b.png", "https://pbxt.replicate.delivery/a\x7f.png",
                                 "https://pbxt.replicate.delivery/a.png?x=\x00", "https://pbxt.replicate.delivery/ф.png"])
def test_an_image_url_no_request_line_can_carry_fails_for_good(resolver, url):
    """http.client refuses control characters and spaces: it was a transient error, tried again at
    every check until the step's deadline."""
    resolver.append("151.101.1.1")
    with pytest.raises(DownloadError) as caught:
        download(url, max_bytes=1 << 20, hosts=OutputHosts.of("", None, ()), timeout=5.0)
    assert caught.value.transient is False and "spaces, control or non-ASCII characters" in str(caught.value)


@pytest.mark.parametrize("suffix", ["\n", "\t", "\r\n"])
def test_an_output_url_ending_in_a_newline_is_still_fetched(redirects, suffix):
    """urlsplit drops tabs and newlines, so what is sent is the clean URL (a model's output string
    may end in a newline)."""
    base, _ = redirects
    data, _ = download(base + "/hop/0" + suffix, max_bytes=1 << 20, hosts=OutputHosts.of(base, None, ()), timeout=5.0)
    assert data == png_bytes()


@pytest.mark.parametrize("text", ["a.example, b.example", "a.example b.example", " A.example\tb.example,, "])
def test_list_settings_take_commas_or_spaces(text):
    # yc's --environment splits its value at commas: an operator writes a list with spaces there.
    settings = load({"OUTPUT_HOSTS": text, "ALLOWED_ORIGINS": text.replace("example", "example/")})
    assert settings.output_hosts == ("a.example", "b.example")
    assert settings.allowed_origins == ("a.example", "b.example")
