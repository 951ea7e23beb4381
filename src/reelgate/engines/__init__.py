"""Engines turn a validated job into an H.264 MP4. See `base.py` for the protocol."""
