"""Turn each request item into the model's 64 pixels (0..1, dark ink on a light background).

The input tensor `image` is BYTES, one string per image, either
- a base64-encoded PNG (any size or colour; it is scaled to 8x8 grey), or
- a pixel array as JSON text: 64 numbers, or 8 rows of 8, each 0..16 like scikit-learn's digits.
"""

import base64
import binascii
import io
import json

import numpy as np
from mlgen_runtime.errors import RequestError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def preprocess(inputs: dict) -> dict:
    items = inputs["image"]
    if not items:
        raise RequestError(400, "image: send at least one image")
    return {"pixels": np.stack([_pixels(item, index) for index, item in enumerate(items)])}


def _pixels(item: str, index: int) -> np.ndarray:
    text = item.strip()
    if text.startswith("["):
        return _from_array(text, index)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"image[{index}] is neither a JSON pixel array nor base64") from None
    if not data.startswith(PNG_SIGNATURE):
        raise RequestError(400, f"image[{index}] is base64 but not a PNG")
    return _from_png(data, index)


def _from_array(text: str, index: int) -> np.ndarray:
    try:
        pixels = np.asarray(json.loads(text), dtype=np.float32).reshape(64)
    except (ValueError, TypeError):
        raise RequestError(400, f"image[{index}]: a pixel array holds 64 numbers (or 8 rows of 8)") from None
    if not np.all((pixels >= 0) & (pixels <= 16)):
        raise RequestError(400, f"image[{index}]: pixel values go from 0 (background) to 16 (ink)")
    return pixels / 16.0


def _from_png(data: bytes, index: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError  # only PNG requests pay for the import

    try:
        with Image.open(io.BytesIO(data)) as image:
            grey = image.convert("L").resize((8, 8), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError, ValueError):
        raise RequestError(400, f"image[{index}] is not a readable PNG") from None
    ink = 1.0 - np.asarray(grey, dtype=np.float32).reshape(64) / 255.0
    return ink
