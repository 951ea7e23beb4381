"""Scene neither image has (a corner a diagonal pan sweeps through): what the morph puts there."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from reelgate.engines.motion.layered import LayeredMorph
from reelgate.engines.motion.planes import Layout

WIDTH, HEIGHT = 160, 90


def _flat(value: int) -> npt.NDArray[np.uint8]:
    return np.full((HEIGHT, WIDTH, 3), value, dtype=np.uint8)


def _pan(dx: float, dy: float) -> npt.NDArray[np.float64]:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("layout", ["rgb", "i420"])
def test_unseen_scene_is_not_darkened(layout: Layout) -> None:
    """cv2.blendLinear divides by the weights' sum plus 1e-5: tiny fallback weights darkened it by 9%."""
    morph = LayeredMorph(_flat(200), _flat(200), _pan(40.0, -40.0), None, (WIDTH, HEIGHT), layout)
    # The top-left corner is outside both images at t = 1/2 (A's sample 20 px left, B's 20 px up), and
    # the whole frame must still be the one flat colour, as A itself is in this layout.
    difference = morph.frame_at(0.5).astype(np.int16) - morph.frame_at(0.0).astype(np.int16)
    assert int(np.abs(difference).max()) <= 1


def test_unseen_scene_comes_from_the_nearer_edge() -> None:
    # At t = 3/4 the corner's sample lies 30 px outside A and 10 px outside B: B's edge is the better guess.
    morph = LayeredMorph(_flat(200), _flat(100), _pan(40.0, -40.0), None, (WIDTH, HEIGHT), "rgb")
    corner = int(morph.frame_at(0.75)[0, 0, 0])
    assert corner <= 103, corner  # the plain (1 - t, t) blend of the two edges would be 125 (114 darkened)
    corner = int(morph.frame_at(0.25)[0, 0, 0])
    assert corner >= 197, corner
