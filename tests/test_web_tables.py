"""The page's tables follow the backend's: every status has a state, every error code a sentence
in both languages (web/app.js is plain JavaScript, so the check reads its object literals)."""

import re
from pathlib import Path

from shared.states import ErrorCode, Status

APP = (Path(__file__).resolve().parent.parent / "web" / "app.js").read_text(encoding="utf-8")


def keys_of(block_name: str, text: str = APP) -> set[str]:
    """The keys of `const NAME = { key: ..., ... };` at the object's top level."""
    start = text.index(f"const {block_name} = {{")
    depth, body = 0, []
    for char in text[start + len(f"const {block_name} = "):]:
        depth += (char == "{") - (char == "}")
        body.append(char)
        if depth == 0:
            break
    keys, depth = set(), 0
    for line in "".join(body)[1:-1].splitlines():
        if depth == 0 and (match := re.match(r"\s*([a-z_]+):", line)):
            keys.add(match[1])
        depth += line.count("{") - line.count("}")
    return keys


def test_the_page_knows_every_status_and_nothing_else():
    assert keys_of("STATES") == {status.value for status in Status}


def test_every_error_code_has_a_sentence_in_russian_and_english():
    start = APP.index("const FAILURES = {")
    languages = {}
    for lang in ("ru", "en"):
        block = APP[APP.index(f"{lang}: {{", start):]
        languages[lang] = keys_of("X", "const X = " + block[len(f"{lang}: "):])
    codes = {code.value for code in ErrorCode}
    for lang, keys in languages.items():
        assert codes <= keys, f"{lang}: no sentence for {sorted(codes - keys)}"
        assert keys - codes == {"other"}, f"{lang}: sentences for unknown codes {sorted(keys - codes - {'other'})}"
