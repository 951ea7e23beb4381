"""Image intake with real encoded bytes, built with Pillow (or by hand where Pillow would refuse)."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from PIL import Image

from reelgate.egress.client import EgressClient
from reelgate.errors import ApiError
from reelgate.media.images import (
    MIN_SIDE_PX,
    DecodedImage,
    ImageRejected,
    decode_data_uri,
    decode_image,
    load_image,
    sniff_format,
    validate_image_at_create,
)

MAX_PIXELS = 40_000_000
PARAM = "image_urls[0]"


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 160, height: int = 90) -> Image.Image:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height while carrying only a few bytes of pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def rejected(data: bytes, max_pixels: int = MAX_PIXELS) -> str:
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, max_pixels=max_pixels, param=PARAM)
    assert caught.value.param == PARAM
    return caught.value.message


@pytest.mark.parametrize(("fmt", "options"), [("JPEG", {"quality": 95}), ("PNG", {}), ("WEBP", {"lossless": True})])
def test_decodes_supported_formats(fmt: str, options: dict[str, Any]) -> None:
    source = gradient()
    decoded = decode_image(encode(source, fmt, **options), max_pixels=MAX_PIXELS, param=PARAM)
    assert decoded.format == fmt.lower()
    assert decoded.pixels.shape == (90, 160, 3) and decoded.pixels.dtype == np.uint8
    if fmt != "JPEG":
        assert np.array_equal(decoded.pixels, np.asarray(source))


def test_format_comes_from_bytes_not_names() -> None:
    assert sniff_format(encode(gradient(), "PNG")) == "png"
    assert sniff_format(encode(gradient(), "JPEG")) == "jpeg"
    assert sniff_format(encode(gradient(), "WEBP")) == "webp"
    assert sniff_format(b"<html>not an image</html>") is None


@pytest.mark.parametrize("fmt", ["GIF", "BMP"])
def test_gif_and_bmp_rejected(fmt: str) -> None:
    message = rejected(encode(gradient(), fmt))
    assert message.startswith(f"{fmt} images are not supported")


def test_unknown_bytes_rejected() -> None:
    assert "not a recognised image" in rejected(b"%PDF-1.7 pretending to be a picture")


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_images_rejected(fmt: str) -> None:
    frames = [Image.new("RGB", (80, 80), colour) for colour in ("red", "blue")]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:])
    assert rejected(data) == f"animated {fmt} images are not supported"


def test_huge_header_rejected_before_decode() -> None:
    # 30000 x 30000 is past Pillow's own bomb limit; 8000 x 6000 is under it but over ours.
    assert "too many pixels" in rejected(png_claiming(30_000, 30_000))
    assert rejected(png_claiming(8000, 6000)) == "is 8000x6000, more than the limit of 40000000 pixels"


def test_tiny_images_rejected() -> None:
    assert "at least" in rejected(encode(Image.new("RGB", (1, 1)), "PNG"))
    assert "at least" in rejected(encode(Image.new("RGB", (MIN_SIDE_PX - 1, 500)), "PNG"))
    assert decode_image(encode(Image.new("RGB", (MIN_SIDE_PX, MIN_SIDE_PX)), "PNG"), max_pixels=10**6, param=PARAM)


def test_exif_orientation_applied() -> None:
    # Stored 200 wide x 120 high, left half red; orientation 6 = rotate 90 degrees clockwise to display,
    # which puts the stored left half on top.
    stored = np.zeros((120, 200, 3), dtype=np.uint8)
    stored[:, :100] = (255, 0, 0)
    stored[:, 100:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.fromarray(stored, "RGB"), "JPEG", quality=95, exif=exif.tobytes())
    pixels = decode_image(data, max_pixels=MAX_PIXELS, param=PARAM).pixels
    assert pixels.shape == (200, 120, 3)
    top, bottom = pixels[20, 60].astype(int), pixels[180, 60].astype(int)
    assert top[0] > 200 and top[2] < 50
    assert bottom[2] > 200 and bottom[0] < 50


def test_transparency_composited_on_white() -> None:
    rgba = np.zeros((80, 80, 4), dtype=np.uint8)
    rgba[:, :40] = (0, 0, 0, 255)  # opaque black; the right half stays fully transparent black
    pixels = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"), max_pixels=MAX_PIXELS, param=PARAM).pixels
    assert (pixels[:, :40] == 0).all()
    assert (pixels[:, 40:] == 255).all()


def test_sixteen_bit_greyscale_scaled_not_clipped() -> None:
    grey = np.full((70, 70), 65535, dtype=np.uint16)
    grey[:, :35] = 32896  # 128 * 257
    image = Image.fromarray(grey)
    assert image.mode == "I;16"
    pixels = decode_image(encode(image, "PNG"), max_pixels=MAX_PIXELS, param=PARAM).pixels
    assert (pixels[:, :35] == 128).all() and (pixels[:, 35:] == 255).all()


def test_truncated_jpeg_rejected() -> None:
    data = encode(gradient(400, 300), "JPEG", quality=90)
    message = rejected(data[: len(data) // 2])
    assert message == "could not be decoded as JPEG: the file is truncated"


def test_corrupt_png_header_rejected() -> None:
    data = encode(gradient(), "PNG")
    assert "corrupt" in rejected(data[:20])


def test_data_uri_roundtrip() -> None:
    data = encode(gradient(), "PNG")
    assert decode_data_uri(data_uri(data), max_bytes=len(data), param=PARAM) == data


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("data:image/png;base64,!!!not-base64!!!", "not valid base64"),
        ("data:image/png;base64,aGVsbG8", "not valid base64"),  # missing padding
        ("data:image/png;base64,aGVs\nbG8=", "not valid base64"),
        ("data:image/png;base64,", "empty"),
        ("data:text/plain;base64,aGVsbG8=", "data:image/"),
        ("data:image/png,aGVsbG8=", "data:image/"),
    ],
)
def test_data_uri_garbage_rejected(uri: str, fragment: str) -> None:
    with pytest.raises(ImageRejected) as caught:
        decode_data_uri(uri, max_bytes=1000, param=PARAM)
    assert fragment in caught.value.message


def test_data_uri_size_checked_before_decoding() -> None:
    # Invalid base64 too: the size refusal must come first, without decoding a single byte.
    with pytest.raises(ImageRejected, match="larger than the limit"):
        decode_data_uri("data:image/png;base64," + "!" * 5_000_000, max_bytes=1_000_000, param=PARAM)
    exact = b"\x00" * 1000
    assert decode_data_uri(data_uri(exact), max_bytes=1000, param=PARAM) == exact
    with pytest.raises(ImageRejected, match="larger than the limit"):
        decode_data_uri(data_uri(exact + b"\x00"), max_bytes=1000, param=PARAM)


def test_validate_at_create() -> None:
    good = data_uri(encode(gradient(), "PNG"))
    validate_image_at_create(good, param=PARAM, max_bytes=1 << 20, max_pixels=MAX_PIXELS, allow_private=False)
    validate_image_at_create("https://example.com/cat.png", param=PARAM, max_bytes=1, max_pixels=1, allow_private=False)
    for bad in (
        data_uri(encode(gradient(), "GIF"), "image/gif"),
        data_uri(png_claiming(8000, 6000)),
        "data:image/png;base64,@@@@",
        "http://127.0.0.1/cat.png",
    ):
        with pytest.raises(ApiError) as caught:
            validate_image_at_create(
                bad, param="image_urls[1]", max_bytes=1 << 20, max_pixels=MAX_PIXELS, allow_private=False
            )
        assert caught.value.status == 400 and caught.value.param == "image_urls[1]"
        assert caught.value.message.startswith("image_urls[1]")


class ImageHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/cat.txt":  # a misleading name and type: the bytes decide
            body, status = encode(Image.new("RGB", (160, 90), "teal"), "WEBP"), 200
        elif self.path == "/big.png":
            body, status = b"\x89PNG\r\n\x1a\n" + b"\x00" * 30_000, 200
        else:
            body, status = b"missing", 404
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def image_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ImageHandler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_load_image_from_http_and_data(image_server: str) -> None:
    async def scenario() -> None:
        async with EgressClient(allow_private_networks=True) as client:

            async def load(url: str, param: str = PARAM) -> DecodedImage:
                return await load_image(
                    url, param=param, client=client, max_bytes=20_000, max_pixels=MAX_PIXELS, timeout_s=5.0
                )

            fetched = await load(f"{image_server}/cat.txt")
            assert fetched.format == "webp" and fetched.pixels.shape == (90, 160, 3)
            assert (await load(data_uri(encode(Image.new("RGB", (90, 90)), "PNG")))).format == "png"
            for url, expected in (
                (f"{image_server}/missing.png", "could not be downloaded: localhost answered HTTP 404"),
                (f"{image_server}/big.png", "is larger than the limit of 20000 bytes"),
                ("data:image/png;base64,%%%", "the data URI is not valid base64"),
            ):
                with pytest.raises(ImageRejected) as caught:
                    await load(url, param="image_urls[1]")
                assert caught.value.message == expected
                assert str(caught.value) == f"image_urls[1]: {expected}"

        async with EgressClient(allow_private_networks=False) as strict:
            with pytest.raises(ImageRejected, match="private or internal"):
                await load_image(
                    f"{image_server}/cat.txt",
                    param=PARAM,
                    client=strict,
                    max_bytes=1 << 20,
                    max_pixels=MAX_PIXELS,
                    timeout_s=5.0,
                )

    asyncio.run(scenario())
