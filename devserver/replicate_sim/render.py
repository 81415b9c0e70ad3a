"""Outputs that are real images: the garment composited onto the person when both images can be
read (data URIs, or URLs on this machine), otherwise a generated figure labelled with the step."""

from __future__ import annotations

import base64
import hashlib
import io
import urllib.request
from urllib.parse import urlsplit

WIDTH, HEIGHT = 768, 1024
# Where each category puts the garment, as fractions of the height.
BANDS = {"upper_body": (0.27, 0.58), "lower_body": (0.52, 0.95), "dresses": (0.27, 0.92)}


def _fetch_image(ref: str):
    """Reads an input image: data URIs, and URLs on this machine (there is no internet here)."""
    from PIL import Image

    try:
        if ref.startswith("data:"):
            data = base64.b64decode(ref.split(",", 1)[1])
        elif (urlsplit(ref).hostname or "") not in ("127.0.0.1", "localhost", "::1"):
            return None
        else:
            with urllib.request.urlopen(ref, timeout=5) as response:
                data = response.read(30 * 1024 * 1024)
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    except Exception:
        return None


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


_PLACEHOLDER: list[bytes] = []


def placeholder_png() -> bytes:
    if not _PLACEHOLDER:
        from PIL import Image

        out = io.BytesIO()
        Image.new("RGB", (48, 64), (148, 163, 184)).save(out, format="PNG")
        _PLACEHOLDER.append(out.getvalue())
    return _PLACEHOLDER[0]


def render_try_on(person_ref: str, garment_ref: str, category: str, description: str,
                  image_format: str = "PNG") -> bytes:
    """A 768x1024 image: the garment laid over the person where the category puts it."""
    from PIL import Image, ImageChops, ImageDraw, ImageOps

    person = _fetch_image(person_ref)
    garment = _fetch_image(garment_ref)
    if person is not None:
        canvas = ImageOps.fit(person.convert("RGB"), (WIDTH, HEIGHT))
    else:
        canvas = Image.new("RGB", (WIDTH, HEIGHT), (226, 232, 240))
        draw = ImageDraw.Draw(canvas)
        draw.ellipse((284, 90, 484, 290), fill=(148, 163, 184))
        draw.rounded_rectangle((214, 300, 554, 980), radius=60, fill=(148, 163, 184))
    top, bottom = BANDS.get(category, BANDS["upper_body"])
    box = (int(WIDTH * 0.22), int(HEIGHT * top), int(WIDTH * 0.78), int(HEIGHT * bottom))
    if garment is not None:
        piece = ImageOps.contain(garment.convert("RGBA"), (box[2] - box[0], box[3] - box[1]))
        # Near-white product-photo backgrounds become transparent.
        red, green, blue, alpha = piece.split()
        darkest = ImageChops.darker(ImageChops.darker(red, green), blue)
        piece.putalpha(ImageChops.multiply(alpha, darkest.point(lambda v: 0 if v > 235 else 255)))
        offset = (box[0] + (box[2] - box[0] - piece.width) // 2, box[1] + (box[3] - box[1] - piece.height) // 2)
        canvas.paste(piece, offset, piece)
    else:
        hue = int(hashlib.sha256(description.encode()).hexdigest()[:6], 16)
        colour = ((hue >> 16) % 200 + 30, (hue >> 8) % 200 + 30, hue % 200 + 30)
        ImageDraw.Draw(canvas).rounded_rectangle(box, radius=40, fill=colour)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, HEIGHT - 56, WIDTH, HEIGHT), fill=(15, 23, 42))
    draw.text((20, HEIGHT - 44), f"{category}: {description}"[:60], fill=(248, 250, 252), font=_font(28))
    out = io.BytesIO()
    canvas.save(out, format=image_format, optimize=False)
    return out.getvalue()


def render_output(profile: str, model_input: dict, extension: str) -> bytes:
    """The output image of a prediction of `profile` (idm-vton | nano-banana | custom)."""
    image_format = "JPEG" if extension == "jpg" else "PNG"
    if profile == "idm-vton":
        return render_try_on(model_input["human_img"], model_input["garm_img"],
                             model_input.get("category", "upper_body"), str(model_input.get("garment_des") or ""),
                             image_format)
    if profile == "nano-banana":
        images = model_input.get("image_input") or []
        prompt = model_input["prompt"]
        category = next((c for word, c in (("dress", "dresses"), ("lower", "lower_body")) if word in prompt.lower()),
                        "upper_body")
        person, garment = [*images, "", ""][:2]
        return render_try_on(person, garment, category, prompt, image_format)
    uris = [v for v in model_input.values() if isinstance(v, str) and v.startswith(("http://", "https://", "data:"))]
    person, garment = [*uris, "", ""][:2]
    return render_try_on(person, garment, "upper_body", "custom model", image_format)
