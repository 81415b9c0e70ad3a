"""deploy/yc_env.py: the --environment arguments yc is given carry every variable whole."""

import csv
import subprocess
import sys

import pytest

from deploy import yc_env

TRYON_ENV = """# a comment
DATABASE_URL=postgresql://tryon:pw@rc1a-x.mdb.yandexcloud.net:6432,rc1b-y.mdb.yandexcloud.net:6432/tryon?sslmode=verify-full&target_session_attrs=read-write
REPLICATE_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw==
ALLOWED_ORIGINS=https://shop.example,https://m.shop.example
MODEL_INPUT_TEMPLATE={"human_img": "{person}", "garm_img": "{garment}", "note": "a, b"}
KEYWORD_DSN=host=a.example,b.example port=6432 dbname=tryon sslmode=verify-full

CRON_SECRET=3f9a
"""


def pflag_string_to_string(values: list[str]) -> dict[str, str]:
    """spf13/pflag's stringToString Set, as yc applies it to each --environment value."""
    parsed: dict[str, str] = {}
    for value in values:
        if value.count("=") == 0:
            raise ValueError(f"{value} must be formatted as key=value")
        pairs = [value.strip('"')] if value.count("=") == 1 else next(csv.reader([value], strict=True))
        for pair in pairs:
            key, sep, item = pair.partition("=")
            if not sep:
                raise ValueError(f"{pair} must be formatted as key=value")
            parsed[key] = item
    return parsed


def test_every_variable_reaches_the_function_whole(tmp_path):
    path = tmp_path / "tryon.env"
    path.write_text(TRYON_ENV)
    out = subprocess.run([sys.executable, "-m", "deploy.yc_env", str(path)], capture_output=True, check=True).stdout
    words = out.decode().split("\0")[:-1]
    assert words[::2] == ["--environment"] * 6
    assert pflag_string_to_string(words[1::2]) == dict(yc_env.variables(TRYON_ENV))
    assert len(dict(yc_env.variables(TRYON_ENV))) == 6


def test_joined_into_one_flag_as_paste_did_they_came_apart():
    given = dict(yc_env.variables(TRYON_ENV))
    parsed = pflag_string_to_string([f"DATABASE_URL={given['DATABASE_URL']},CRON_SECRET=3f9a"])
    assert parsed["DATABASE_URL"] == "postgresql://tryon:pw@rc1a-x.mdb.yandexcloud.net:6432"  # cut at the comma
    with pytest.raises(ValueError):  # and a list setting is an error
        pflag_string_to_string([f"ALLOWED_ORIGINS={given['ALLOWED_ORIGINS']},CRON_SECRET=3f9a"])


def test_a_value_ending_in_a_quote_is_refused_with_a_sentence():
    with pytest.raises(ValueError, match="console"):
        yc_env.argument("GREETING", 'say "hi"')
