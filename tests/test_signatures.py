"""Our Standard Webhooks check (shared.signatures) against the `replicate` package's own
`Webhooks.validate`: the same verdict on every case, without importing the client at runtime."""

import base64
import time

import pytest
from replicate.webhook import Webhooks, WebhookSigningSecret

from shared import signatures

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OTHER = "whsec_" + base64.b64encode(b"another secret key, 32 bytes...!").decode()
BODY = '{"id": "p1", "status": "succeeded"}'


def cases(now: int) -> dict[str, tuple[dict, str]]:
    """Each case's headers and body, timestamped around `now` (both checks read the real clock)."""

    def signed(body=BODY, *, secret=SECRET, webhook_id="msg_1", at=now) -> dict:
        return {"webhook-id": webhook_id, "webhook-timestamp": str(at),
                "webhook-signature": signatures.sign(secret, webhook_id, at, body)}

    return {
        "valid": (signed(), BODY),
        "valid among several": ({**signed(), "webhook-signature": "v1,Zm9vYmFy " + signed()["webhook-signature"]}, BODY),
        "other secret": (signed(secret=OTHER), BODY),
        "body changed": (signed(), BODY.replace("succeeded", "failed")),
        "id changed": ({**signed(), "webhook-id": "msg_2"}, BODY),
        "too old": (signed(at=now - 310), BODY),
        "from the future": (signed(at=now + 310), BODY),
        "just in tolerance": (signed(at=now - 290), BODY),
        "no signature": ({**signed(), "webhook-signature": ""}, BODY),
        "no id": ({**signed(), "webhook-id": ""}, BODY),
        "no timestamp": ({**signed(), "webhook-timestamp": ""}, BODY),
        "no body": (signed(""), ""),
        "entry without comma": ({**signed(), "webhook-signature": "v1"}, BODY),
        "entry not base64": ({**signed(), "webhook-signature": "v1,@@@"}, BODY),
    }


CASES = list(cases(0))


def replicate_says(headers: dict, body: str) -> bool:
    try:
        Webhooks.validate(headers=headers, body=body, secret=WebhookSigningSecret(key=SECRET), tolerance=300)
    except ValueError:
        return False
    return True


def ours_says(headers: dict, body: str) -> bool:
    try:
        signatures.verify(headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"], body,
                          SECRET, tolerance_s=300)
    except signatures.BadSignature:
        return False
    return True


@pytest.mark.parametrize("case", CASES)
def test_our_verdict_is_the_replicate_packages(case):
    headers, body = cases(int(time.time()))[case]
    assert ours_says(headers, body) == replicate_says(headers, body)


def test_the_cases_cover_both_verdicts():
    now = int(time.time())
    verdicts = [ours_says(headers, body) for headers, body in cases(now).values()]
    assert verdicts.count(True) == 3 and verdicts.count(False) == len(CASES) - 3


def test_a_malformed_secret_is_a_configuration_error_not_a_bad_signature():
    with pytest.raises(ValueError) as raised:
        signatures.verify("msg_1", "1700000000", "v1,Zm9v", BODY, "whsec_not base64!", tolerance_s=300,
                          now=1700000000)
    assert not isinstance(raised.value, signatures.BadSignature)


def test_a_body_that_is_not_unicode_text_is_a_bad_signature_not_a_configuration_error():
    """A JSON event's body can carry a lone surrogate ("\\ud800"): it cannot be what was signed, and
    must not read as a broken secret (webhooks.verify turns any other ValueError into a ConfigError)."""
    with pytest.raises(signatures.BadSignature):
        signatures.verify("msg_1", "1700000000", "v1,Zm9v", '{"id": "\ud800"}', SECRET, tolerance_s=300,
                          now=1700000000)
