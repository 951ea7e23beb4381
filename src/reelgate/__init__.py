"""reelgate: a self-hosted, drop-in compatible Kling-O1 image-to-video API."""

__version__ = "0.1.0"
