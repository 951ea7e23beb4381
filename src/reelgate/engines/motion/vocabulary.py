"""Camera language in a prompt -> a `CameraMove`, after Kling's own camera controls.

Kling's camera control has six axes: horizontal, vertical, pan, tilt, roll, zoom. The phrases below
map onto them (and onto an orbit), several may combine ("zoom in while panning left"), and a speed
word scales them all:

| phrase (and its verb forms)                                    | move                         |
|----------------------------------------------------------------|------------------------------|
| zoom in, push in, dolly in, camera moves in                    | zoom in                      |
| zoom out, pull back, pull out, dolly out                       | zoom out (ends on the image) |
| pan left/right, horizontal (move/shift/pan) left/right          | pan                          |
| trucking, tracking, crabbing, camera moves left/right          | pan (no parallax in a photo) |
| tilt up/down, pan up/down, crane/pedestal/boom up/down, vertical up/down | tilt               |
| camera rolls/rotates/spins, roll left/right/clockwise, dutch angle | roll (default clockwise)  |
| orbit, arc shot, camera circles around (left/right)            | orbit (default right)        |
| static, locked-off, still/fixed camera, no camera movement     | static                       |
| slow(ly), gentle, subtle, calm, leisurely / fast, quick, rapid, swift, dramatic | speed     |

Only camera verbs count: "a truck left the station" or "the cat moves left" name a subject's motion,
not the camera's, so "move" needs the word "camera", and truck/track/crab their verb forms. When cues
conflict ("static shot, then zoom in"), the one the prompt names first wins between static and the
zooms. No cue: a gentle zoom in (a brisker one if the prompt only asks for pace).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ZOOM = r"zoom(?:s|ing|ed)?"
_PUSH = r"push(?:es|ing|ed)?"
_PULL = r"pull(?:s|ing|ed)?"
_DOLLY = r"dolly(?:ing)?|dollie[sd]"
_MOVE = r"camera\s+(?:moves?|moving|slides?|sliding|travels?|travell?ing)"
_PAN_VERB = r"pan(?:s|ning|ned)?"
_SIDE = r"(?:to\s+the\s+|towards?\s+the\s+)?(?P<side>left|right)\b"
_ZOOM_CUES: dict[str, re.Pattern[str]] = {
    "zoom_in": re.compile(rf"\b(?:{_ZOOM}|{_PUSH}|{_DOLLY}|{_MOVE})\s+in(?:to|wards?)?\b"),
    "pull_back": re.compile(rf"\b(?:{_ZOOM}|{_DOLLY})\s+out\b|\b{_PULL}\s+(?:back|out)\b"),
    "static": re.compile(
        r"\bstatic\b|\blocked[\s-]off\b|\bno camera (?:movement|motion)\b|"
        r"\b(?:still|fixed|stationary) camera\b|\bcamera (?:is |stays |remains )?still\b"
    ),
}
_PAN = re.compile(
    rf"\b(?:{_PAN_VERB}|truck(?:s|ing)|track(?:s|ing)|crab(?:s|bing)|{_MOVE}|{_DOLLY}|"
    rf"horizontal(?:ly)?(?:\s+(?:move|movement|shift|pan|track(?:ing)?))?)\s+{_SIDE}"
)
_TILT = re.compile(
    rf"\b(?:tilt(?:s|ing|ed)?|{_PAN_VERB}|cran(?:e|es|ing|ed)|pedestal(?:s|ing|ed)?|boom(?:s|ing|ed)?|{_MOVE}|"
    r"vertical(?:ly)?(?:\s+(?:move|movement|shift|tilt))?)\s+(?P<side>up|down)(?:wards?)?\b"
)
# "rolls", "rotates", "spins" alone are mostly the subject's ("a ball rolls"): camera ones say so.
_ROLL = re.compile(
    r"\bcamera\s+(?:roll(?:s|ing)?|rotat(?:es?|ing)|spin(?:s|ning)?)\b|\bdutch\s+(?:angle|tilt)\b"
    r"|\broll(?:s|ing)?(?=\s+(?:to\s+the\s+)?(?:left|right|clockwise|counter|anti))"
)
# The direction of a roll, right after its cue.
_ROLL_SIDE = re.compile(r"\s*(?:to\s+the\s+)?(?P<side>left|right|clockwise|counter-?clockwise|anti-?clockwise)\b")
_ORBIT = re.compile(
    r"\b(?:orbit(?:s|ing|ed)?|arc(?:s|ing)?\s+(?:shot|around)|camera\s+circl(?:es|ing)(?:\s+around)?)"
    r"(?:\s+(?:around\s+)?(?:the\s+)?(?:\w+\s+)?(?:to\s+the\s+)?(?P<side>left|right))?\b"
)
_SLOW = re.compile(r"\b(?:slow(?:ly)?|gentl[ey]|subtle|subtly|calm(?:ly)?|leisurely)\b")
_FAST = re.compile(r"\b(?:fast|quick(?:ly)?|rapid(?:ly)?|swift(?:ly)?|dramatic(?:ally)?)\b")


@dataclass(frozen=True)
class CameraMove:
    zoom: str  # "in" | "pull_back" | "none" | "static" (static: every frame is the image)
    speed: str  # "slow" | "normal" | "fast"
    pan: int = 0  # -1 left, +1 right
    tilt: int = 0  # -1 up, +1 down
    roll: int = 0  # -1 counterclockwise, +1 clockwise
    orbit: int = 0  # -1 left, +1 right

    @property
    def is_static(self) -> bool:
        return self.zoom == "static"

    @property
    def label(self) -> str:
        """A short human description for task_info, e.g. "zoom_in+pan_left (slow)"."""
        parts = {"in": ["zoom_in"], "pull_back": ["pull_back"], "static": ["static"]}.get(self.zoom, [])
        for value, negative, positive in (
            (self.pan, "pan_left", "pan_right"),
            (self.tilt, "tilt_up", "tilt_down"),
            (self.roll, "roll_counterclockwise", "roll_clockwise"),
            (self.orbit, "orbit_left", "orbit_right"),
        ):
            if value:
                parts.append(negative if value < 0 else positive)
        return f"{'+'.join(parts)} ({self.speed})"


def _side(match: re.Match[str] | None, negative: tuple[str, ...], default: int) -> int:
    if match is None:
        return 0
    side = match.group("side")
    if side is None:
        return default
    return -1 if side.replace("-", "") in negative else 1


def camera_move_from_prompt(prompt: str) -> CameraMove:
    text = prompt.lower()
    speed = "slow" if _SLOW.search(text) else "fast" if _FAST.search(text) else "normal"
    found = {kind: match.start() for kind, pattern in _ZOOM_CUES.items() if (match := pattern.search(text))}
    first = min(found, key=found.__getitem__) if found else None
    if first == "static":
        return CameraMove(zoom="static", speed=speed)
    pan = _side(_PAN.search(text), ("left",), 1)
    tilt = _side(_TILT.search(text), ("up",), 1)
    roll_cue = _ROLL.search(text)
    roll_side = _ROLL_SIDE.match(text, roll_cue.end()) if roll_cue else None
    roll = 0 if roll_cue is None else _side(roll_side, ("left", "counterclockwise", "anticlockwise"), 1) or 1
    orbit = _side(_ORBIT.search(text), ("left",), 1)
    zoom = {"zoom_in": "in", "pull_back": "pull_back"}.get(first or "", "none")
    if zoom == "none" and not (pan or tilt or roll or orbit):
        # No move named: a gentle zoom in, unless the prompt asks for pace ("fast", "dramatic").
        return CameraMove(zoom="in", speed="fast" if speed == "fast" else "slow")
    return CameraMove(zoom=zoom, speed=speed, pan=pan, tilt=tilt, roll=roll, orbit=orbit)
