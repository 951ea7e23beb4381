"""Test images built from real photographs that ship with scikit-image, as bytes and data: URIs."""

from __future__ import annotations

import base64
import io

import numpy as np
import numpy.typing as npt
from PIL import Image
from skimage import data


def astronaut() -> npt.NDArray[np.uint8]:
    return np.asarray(data.astronaut(), dtype=np.uint8)


def coffee() -> npt.NDArray[np.uint8]:
    return np.asarray(data.coffee(), dtype=np.uint8)


def encode(pixels: npt.NDArray[np.uint8], fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def data_uri(pixels: npt.NDArray[np.uint8], fmt: str = "PNG") -> str:
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}[fmt]
    return f"data:{mime};base64,{base64.b64encode(encode(pixels, fmt)).decode()}"


def shifted(pixels: npt.NDArray[np.uint8], dx: int, dy: int = 0) -> npt.NDArray[np.uint8]:
    return np.roll(np.roll(pixels, dx, axis=1), dy, axis=0)
