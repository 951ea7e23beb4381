"""Our normalised images, framed for an upstream: centre-cropped to the requested aspect ratio (Kling ignores
`aspect_ratio` when a first frame is given, so the frame itself must carry the ratio) and encoded as JPEG."""

from __future__ import annotations

import base64
import io

from PIL import Image

from reelgate.engines.base import RGBImage
from reelgate.media.framing import fit_to_frame, output_size

# Kling: "width and height not less than 300px, aspect ratio between 1:2.5 and 2.5:1, at most 10MB" (Kling
# API docs, Omni-Video image_list); fal's Kling O1: "Min width: 300px, Min height: 300px, Max file size 10MB".
# 720 on the short side meets both at every ratio we offer and stays far below 10 MB as JPEG.
UPLOAD_SHORT_SIDE_PX = 720
_JPEG_QUALITY = 92


def framed_jpeg(pixels: RGBImage, aspect_ratio: str) -> bytes:
    width, height = output_size(aspect_ratio, UPLOAD_SHORT_SIDE_PX)
    framed = fit_to_frame(pixels, width, height)
    buffer = io.BytesIO()
    Image.fromarray(framed, mode="RGB").save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    return buffer.getvalue()


def raw_base64(data: bytes) -> str:
    """Kling's form: base64 with no `data:` prefix (Kling API docs, "Base64 format: correct / wrong")."""
    return base64.b64encode(data).decode("ascii")


def data_uri(data: bytes) -> str:
    """fal's form: a base64 data URI is accepted wherever a file URL is (fal docs, "Model endpoints > file
    inputs: Data URI (base64)")."""
    return f"data:image/jpeg;base64,{raw_base64(data)}"
