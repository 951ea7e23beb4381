"""Camera language in prompts -> camera moves (one-image jobs)."""

from __future__ import annotations

import pytest

from reelgate.engines.motion.vocabulary import camera_move_from_prompt


@pytest.mark.parametrize(
    ("prompt", "label"),
    [
        ("", "zoom_in (slow)"),
        ("A cat on a sofa", "zoom_in (slow)"),
        ("a dramatic, fast scene", "zoom_in (fast)"),
        ("Camera zooms in on the face", "zoom_in (normal)"),
        ("slow push in", "zoom_in (slow)"),
        ("dolly in towards the door", "zoom_in (normal)"),
        ("the camera moves in", "zoom_in (normal)"),
        ("fast zoom out", "pull_back (fast)"),
        ("The camera pulls back to reveal the city", "pull_back (normal)"),
        ("pull out", "pull_back (normal)"),
        ("dolly out", "pull_back (normal)"),
        ("pan left across the beach", "pan_left (normal)"),
        ("Panning to the right, quickly", "pan_right (fast)"),
        ("trucking right", "pan_right (normal)"),
        ("camera moves left", "pan_left (normal)"),
        ("horizontal move left", "pan_left (normal)"),
        ("tilt up to the sky", "tilt_up (normal)"),
        ("gently tilting down", "tilt_down (slow)"),
        ("crane up over the roofs", "tilt_up (normal)"),
        ("vertical move down", "tilt_down (normal)"),
        ("camera rolls clockwise", "roll_clockwise (normal)"),
        ("roll to the left", "roll_counterclockwise (normal)"),
        ("camera rotates counter-clockwise", "roll_counterclockwise (normal)"),
        ("dutch angle", "roll_clockwise (normal)"),
        ("orbit around the car", "orbit_right (normal)"),
        ("orbiting left", "orbit_left (normal)"),
        ("camera circles around the dancer to the left", "orbit_left (normal)"),
        ("arc shot right", "orbit_right (normal)"),
        ("zoom in while panning left", "zoom_in+pan_left (normal)"),
        ("slow push in, tilting up, camera rolls right", "zoom_in+tilt_up+roll_clockwise (slow)"),
        ("static shot of a lake", "static (normal)"),
        ("Locked-off camera, then zoom in", "static (normal)"),
        ("zoom in, no camera movement after", "zoom_in (normal)"),
    ],
)
def test_camera_language_maps_to_the_move(prompt: str, label: str) -> None:
    assert camera_move_from_prompt(prompt).label == label


@pytest.mark.parametrize(
    "prompt",
    [
        "a truck left the station",
        "the cat moves left",
        "a ball rolls down the hill",
        "the wheel rotates",
        "birds circle around the tower",
        "people moving into the room",
    ],
)
def test_a_subjects_motion_is_not_a_camera_move(prompt: str) -> None:
    assert camera_move_from_prompt(prompt).label == "zoom_in (slow)"  # the default, nothing recognised
