"""Reading a platform's HTTP event: Yandex Cloud Functions / AWS API Gateway v1, or AWS HTTP API
and Function URL v2 (headers, query string and body each come in either shape)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from shared.errors import InvalidInput


def object_of(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def headers_of(event: dict[str, Any]) -> dict[str, str]:
    merged: dict[str, str] = {}
    multi = event.get("multiValueHeaders")
    if isinstance(multi, dict):
        for key, values in multi.items():
            if isinstance(values, list) and values:
                merged[str(key).lower()] = str(values[0])
    single = event.get("headers")
    if isinstance(single, dict):
        for key, value in single.items():
            if value is not None:
                merged[str(key).lower()] = str(value)
    return merged


def query_of(event: dict[str, Any]) -> dict[str, str]:
    params = event.get("queryStringParameters")
    if isinstance(params, dict):
        return {str(k): str(v) for k, v in params.items() if v is not None}
    raw = event.get("rawQueryString")
    if isinstance(raw, str) and raw:
        # Only here: urllib.parse (with ipaddress) costs a cold start 3 ms, and AWS's v2 events
        # that carry a query string also carry it parsed (queryStringParameters, above).
        from urllib.parse import parse_qsl

        return dict(parse_qsl(raw, keep_blank_values=True))
    return {}


def body_of(event: dict[str, Any]) -> str:
    body = event.get("body")
    if body is None:
        return ""
    if not isinstance(body, str):
        # Some test harnesses pass the parsed JSON; accept it as the platforms would have sent it.
        return json.dumps(body)
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("The request body is not valid base64.", code="invalid_body") from None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("The request body must be UTF-8 JSON.", code="invalid_body") from None
    return body
