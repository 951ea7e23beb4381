"""The built-in CPU engine: camera moves over one image, a layered motion morph between two."""

from reelgate.engines.motion.engine import MotionEngine

__all__ = ["MotionEngine"]
