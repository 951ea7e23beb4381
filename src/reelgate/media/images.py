"""Image intake: bytes from a URL or a data URI, checked and decoded into an RGB array.

Every limit is checked before the expensive step it protects: the encoded size before base64 decoding,
the pixel count from the header before pixels are decoded.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from reelgate.egress.errors import EgressError, TooLargeError
from reelgate.errors import ApiError

if TYPE_CHECKING:
    from reelgate.egress.client import EgressClient

# A video frame is at least 720 px on its short side; below 64 px an image holds too little to
# animate or to upscale into anything recognisable (and 1x1 "images" are almost always mistakes).
MIN_SIDE_PX = 64

_WHITE = (255, 255, 255, 255)
_SUPPORTED = "send a JPEG, PNG or WebP image"
# Format names Pillow uses, by the name we report.
_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


@dataclass(frozen=True)
class DecodedImage:
    pixels: npt.NDArray[np.uint8]  # H x W x 3, RGB
    format: str  # "jpeg" | "png" | "webp"


class ImageRejected(Exception):
    """An image the service cannot use; `message` is for the user and does not repeat `param`."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(f"{param}: {message}")
        self.message = message
        self.param = param


def sniff_format(data: bytes) -> str | None:
    """The image format by its magic number; names and Content-Type headers are not trusted."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return None


def decode_data_uri(uri: str, *, max_bytes: int, param: str) -> bytes:
    header, comma, payload = uri.partition(",")
    if not comma or not header.lower().startswith("data:image/") or not header.lower().endswith(";base64"):
        raise ImageRejected("must be a data:image/...;base64, URI", param=param)
    # Four base64 characters carry three bytes; refuse before decoding anything bigger than allowed.
    if len(payload) > 4 * -(-max_bytes // 3):
        raise ImageRejected(f"is larger than the limit of {_size_text(max_bytes)}", param=param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("the data URI is not valid base64", param=param) from None
    if not data:
        raise ImageRejected("the data URI is empty", param=param)
    if len(data) > max_bytes:
        raise ImageRejected(f"is larger than the limit of {_size_text(max_bytes)}", param=param)
    return data


def inspect_image(data: bytes, *, max_pixels: int, param: str) -> Image.Image:
    """Opens `data` lazily and checks format, frames and dimensions from the header alone."""
    image_format = sniff_format(data)
    if image_format in ("gif", "bmp"):
        raise ImageRejected(f"{image_format.upper()} images are not supported; {_SUPPORTED}", param=param)
    if image_format is None:
        raise ImageRejected(f"is not a recognised image; {_SUPPORTED}", param=param)
    try:
        image = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[image_format]])
    except Image.DecompressionBombError:
        raise ImageRejected(f"has too many pixels (limit {max_pixels})", param=param) from None
    except (OSError, SyntaxError, ValueError):
        message = f"is not a valid {image_format.upper()} file (corrupt header)"
        raise ImageRejected(message, param=param) from None
    if getattr(image, "is_animated", False):
        raise ImageRejected(f"animated {image_format.upper()} images are not supported", param=param)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected(f"is {width}x{height}, more than the limit of {max_pixels} pixels", param=param)
    if min(width, height) < MIN_SIDE_PX:
        raise ImageRejected(f"is {width}x{height}; both sides must be at least {MIN_SIDE_PX} px", param=param)
    return image


def decode_image(data: bytes, *, max_pixels: int, param: str) -> DecodedImage:
    image = inspect_image(data, max_pixels=max_pixels, param=param)
    image_format = str(sniff_format(data))
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
        pixels = _to_rgb(upright)
    except Image.DecompressionBombError:
        raise ImageRejected(f"has too many pixels (limit {max_pixels})", param=param) from None
    except (OSError, SyntaxError, ValueError) as exc:
        detail = "the file is truncated" if "truncated" in str(exc) else "the file is corrupt"
        message = f"could not be decoded as {image_format.upper()}: {detail}"
        raise ImageRejected(message, param=param) from None
    return DecodedImage(pixels=pixels, format=image_format)


async def load_image(
    url: str, *, param: str, client: EgressClient, max_bytes: int, max_pixels: int, timeout_s: float
) -> DecodedImage:
    if url[:5].lower() == "data:":
        data = decode_data_uri(url, max_bytes=max_bytes, param=param)
    else:
        try:
            fetched = await client.fetch_bytes(url, max_bytes=max_bytes, timeout_s=timeout_s)
        except TooLargeError:
            raise ImageRejected(f"is larger than the limit of {_size_text(max_bytes)}", param=param) from None
        except EgressError as exc:
            raise ImageRejected(f"could not be downloaded: {exc.message}", param=param) from None
        data = fetched.data
    # Decoding a large image takes long enough to stall every other request on the event loop.
    return await asyncio.to_thread(decode_image, data, max_pixels=max_pixels, param=param)


@dataclass(frozen=True)
class EmbeddedImage:
    """The image bytes a data URI carried, checked at create (so they can be stored instead of the URI)."""

    data: bytes
    format: str  # "jpeg" | "png" | "webp"


def validate_image_at_create(
    url: str, *, param: str, max_bytes: int, max_pixels: int, allow_private: bool
) -> EmbeddedImage | None:
    """What can be known without the network: URL syntax, and for data URIs size, format and dimensions
    (returned, for a data URI, as the checked bytes).

    Data URIs get the header check only; the full decode happens in the worker, off the request path.
    """
    # Here, not at the top: the URL checks import httpx, which decoding a local file (`reelgate generate`,
    # the worker) does not need.
    from reelgate.egress.urls import validate_image_url_syntax

    if validate_image_url_syntax(url, param=param, allow_private=allow_private) != "data":
        return None
    try:
        data = decode_data_uri(url, max_bytes=max_bytes, param=param)
        inspect_image(data, max_pixels=max_pixels, param=param).close()
    except ImageRejected as rejected:
        raise ApiError(400, str(rejected), param=param) from None
    return EmbeddedImage(data=data, format=str(sniff_format(data)))


def _to_rgb(image: Image.Image) -> npt.NDArray[np.uint8]:
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        # 16-bit greyscale PNGs: Pillow's own conversion to 8 bits clips instead of scaling.
        grey = np.asarray(image, dtype=np.float64) / 257.0
        grey8 = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey8[:, :, None], 3, axis=2))
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        # Videos have no alpha channel; white matches how viewers display transparent images on a page,
        # whereas dropping alpha would expose whatever colour the encoder left under transparent pixels.
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba)
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _size_text(num_bytes: int) -> str:
    megabytes = num_bytes / (1024 * 1024)
    return f"{megabytes:.3g} MB" if megabytes >= 1 else f"{num_bytes} bytes"
