"""The motion engine on camera pairs drawn at random, and its speed as a user waits for it.

    .venv/bin/python bench/motion_pairs.py [--seed 2026] [--pairs 40] [--quick]

A new script beside bench/motion.py rather than more of it: that one measures fixed moves (each chosen to show
one thing: zoom, pan, roll, RIFE), this one draws its camera pairs from a seed so that nobody, the engine's
authors included, chose them, and it times the whole `reelgate generate` process and the worker's job, not only
the engine.

Quality. Every pair is cut from a real photograph (scikit-image's astronaut, coffee, chelsea and rocket, taken
in turn) by a camera move drawn from the seed (`draw_camera`): a push in or pull back (zoom 1/1.6x to 1.6x)
about a fixed point anywhere in the frame, a pan, a roll (up to 10 degrees) about a point anywhere in the frame,
all of them combined, or a camera turning on a tripod (yaw and pitch up to 4 degrees: a keystone, mild
perspective) with a zoom. A draw whose frames would leave the photograph is drawn again (from the same seeded
generator). The camera moves steadily: the same motion from one frame to the next, so the frame at time t is A
moved by exp(t G) for the move's generator G. (Two frames do not fix the pace of a move between them; the steady
move is the one path they do fix, and the one the engine follows. A pan while zooming about the centre, the
centre moving at constant speed over the scene, is another pace: it is measured separately, `other pace`, and
left out of the verdict.) In the object pairs a disc cut from another photograph moves on a straight line at
constant speed, over a still camera or a pan. The true frames at t = 1/4, 1/2, 3/4 are rendered the same way
(bicubic, from the photograph), and the frames each method makes from the two ends alone are compared with them
(PSNR on RGB): the engine (its renderer, before the H.264 encode), a crossfade, and ffmpeg's minterpolate with
`minterpolate=fps=24:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=none` (A at 0 s, B at 1 s: frames 6,
12 and 18 are t = 1/4, 1/2, 3/4).

Speed, at 1280x720 (a camera pair from the generator): the whole `reelgate generate` process, from its start
to its exit (the MP4 closed), for two frames -> 5 s and one image -> 5 s; the worker's job, claim to finish
(`started_at` to `finished_at` of a task run by `reelgate serve` with one in-process worker: decoding the
inputs, the engine, the poster, storing the result); the engine alone (`MotionEngine.run` in this process,
warm); and ffmpeg making the same 5 s from the same two frames with the minterpolate above and the engine's
x264 settings. Wall time is the median of the runs; CPU time (the process and the ffmpeg it runs) is printed
beside it, since on a loaded machine it says more than the wall time. Peak memory: a 10 s 720p two-image
`reelgate generate` run in a child, its own peak RSS plus that of its encoder.

`--quick`: 4 camera pairs and 1 object pair, no "other pace", speed at 160x90 and one run each (tests that
the bench runs; its figures are not the benchmark's).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from _common import EngineOnlyContext
from skimage import data

from reelgate.engines.base import Job
from reelgate.engines.motion import MotionEngine
from reelgate.engines.motion.morph import crossfade_at, frame_at, plan_morph
from reelgate.media.video import ffmpeg_exe

Image = npt.NDArray[np.uint8]
Matrix = npt.NDArray[np.float64]

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
TIMES = (0.25, 0.5, 0.75)
QUALITY_SIZE = (448, 252)  # 16:9; the photos are 300-640 px, so their scenes are enlarged at most 1.8x
SCENE_FACTOR = 1.8  # the scene a pair is cut from, in frame sizes: room for a 1.6x pull-back off the centre
SPEED_SIZE = (1280, 720)
QUICK_SPEED_SIZE = (160, 90)
MINTERPOLATE = "minterpolate=fps=24:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=none"
DEFAULT_SEED = 2026
KINDS = ("push/pull", "pan", "roll", "combined", "perspective")


def expm(matrix: Matrix) -> Matrix:
    """exp of a 3 x 3 matrix: its Taylor series on matrix / 2^k (norm below 1/2), squared k times. The
    bench's own, so the truth does not lean on the engine's code."""
    norm = float(np.abs(matrix).sum(axis=1).max())
    squarings = max(0, math.ceil(math.log2(norm / 0.5))) if norm > 0.5 else 0
    scaled = matrix / 2.0**squarings
    result, term = np.eye(3), np.eye(3)
    for k in range(1, 30):
        term = term @ scaled / k
        result = result + term
    for _ in range(squarings):
        result = result @ result
    return np.asarray(result, dtype=np.float64)


# --- the generator -----------------------------------------------------------------------------------------


def _about(point: tuple[float, float], log_zoom: float, roll: float) -> Matrix:
    """The generator of a zoom (log factor) and a roll (radians) about `point`, in A's pixels."""
    px, py = point
    linear = np.array([[log_zoom, -roll], [roll, log_zoom]])
    generator = np.zeros((3, 3))
    generator[:2, :2] = linear
    generator[:2, 2] = -linear @ np.array([px, py])
    return generator


def _pan(dx: float, dy: float) -> Matrix:
    generator = np.zeros((3, 3))
    generator[:2, 2] = (dx, dy)
    return generator


def _turn(yaw: float, pitch: float, focal: float, width: int, height: int) -> Matrix:
    """A camera turning on a tripod: K [omega]x K^-1, a keystone that grows steadily."""
    k = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
    omega = np.array([[0.0, 0.0, yaw], [0.0, 0.0, -pitch], [-yaw, pitch, 0.0]])
    return np.asarray(k @ omega @ np.linalg.inv(k), dtype=np.float64)


def draw_camera(rng: np.random.Generator, kind: str, width: int, height: int) -> tuple[Matrix, str]:
    """A steady camera move of `kind`, as its generator G (A -> frame t is exp(t G)), and its description."""
    point = (float(rng.uniform(0, width - 1)), float(rng.uniform(0, height - 1)))
    log_zoom = float(rng.uniform(math.log(1.05), math.log(1.6)) * rng.choice([-1.0, 1.0]))
    roll = math.radians(float(rng.uniform(2.0, 10.0) * rng.choice([-1.0, 1.0])))
    angle = float(rng.uniform(0, 2 * math.pi))
    travel = float(rng.uniform(0.03, 0.15)) * width
    pan = (travel * math.cos(angle), travel * math.sin(angle))
    at = f"({point[0]:.0f},{point[1]:.0f})"
    if kind == "push/pull":
        return _about(point, log_zoom, 0.0), f"zoom {math.exp(log_zoom):.2f}x about {at}"
    if kind == "pan":
        return _pan(*pan), f"pan ({pan[0]:+.0f},{pan[1]:+.0f}) px"
    if kind == "roll":
        return _about(point, 0.0, roll), f"roll {math.degrees(roll):+.1f} deg about {at}"
    if kind == "combined":
        return _about(point, log_zoom, roll) + _pan(*pan), (
            f"zoom {math.exp(log_zoom):.2f}x, roll {math.degrees(roll):+.1f} deg about {at}, "
            f"pan ({pan[0]:+.0f},{pan[1]:+.0f})"
        )
    yaw, pitch = (math.radians(float(rng.uniform(-4.0, 4.0))) for _ in range(2))
    focal = float(rng.uniform(0.8, 1.5)) * width
    mild_zoom = log_zoom / 3
    generator = _turn(yaw, pitch, focal, width, height) + _about(point, mild_zoom, 0.0)
    description = (
        f"turn yaw {math.degrees(yaw):+.1f} pitch {math.degrees(pitch):+.1f} deg (f={focal:.0f}), "
        f"zoom {math.exp(mild_zoom):.2f}x about {at}"
    )
    return generator, description


@dataclass(frozen=True)
class ObjectMove:
    start: tuple[float, float]  # the disc's top-left in A's pixels at t = 0
    travel: tuple[float, float]


@dataclass(frozen=True)
class Pair:
    photo: str
    kind: str
    description: str
    generator: Matrix
    disc: ObjectMove | None = None

    def camera(self, t: float) -> Matrix:
        """A's pixel -> the frame at time t."""
        return np.asarray(expm(t * self.generator), dtype=np.float64)


def _footprint(pair: Pair, width: int, height: int) -> npt.NDArray[np.float64]:
    """Where the corners of every frame of the pair lie in A's pixels (sampled densely in t)."""
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [width - 1, height - 1, 1], [0, height - 1, 1]], float).T
    points = []
    for t in np.linspace(0.0, 1.0, 21):
        mapped = np.linalg.inv(pair.camera(float(t))) @ corners
        points.append((mapped[:2] / mapped[2]).T)
    return np.concatenate(points)


class Scene:
    """A photograph enlarged to SCENE_FACTOR frame sizes; a pair's frame A is placed inside it so that every
    frame of the pair stays inside."""

    def __init__(self, photo: str, size: tuple[int, int]) -> None:
        width, height = size
        image = np.asarray(getattr(data, photo)(), dtype=np.uint8)
        scale = max(SCENE_FACTOR * width / image.shape[1], SCENE_FACTOR * height / image.shape[0])
        self.image = np.asarray(
            cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), dtype=np.uint8
        )
        self.size = size
        donor = np.asarray(getattr(data, "chelsea" if photo != "chelsea" else "coffee")(), dtype=np.uint8)
        radius = round(0.14 * height)
        dh, dw = donor.shape[:2]
        self.disc = np.ascontiguousarray(
            donor[dh // 2 - radius : dh // 2 + radius, dw // 2 - radius : dw // 2 + radius]
        )
        yy, xx = np.mgrid[0 : 2 * radius, 0 : 2 * radius]
        self.disc_alpha = np.clip(radius - np.hypot(xx - radius + 0.5, yy - radius + 0.5), 0.0, 1.0).astype(np.float32)

    def placement(self, pair: Pair) -> npt.NDArray[np.float64] | None:
        """A's top-left in the scene so that the whole pair fits (one pixel in, for the bicubic taps), or None."""
        width, height = self.size
        footprint = _footprint(pair, width, height)
        low, high = footprint.min(axis=0), footprint.max(axis=0)
        scene_h, scene_w = self.image.shape[:2]
        span = high - low
        if span[0] > scene_w - 4 or span[1] > scene_h - 4:
            return None
        # Centre the pair's footprint in the scene.
        return np.asarray(np.array([scene_w - 1, scene_h - 1]) / 2 - (low + high) / 2, dtype=np.float64)

    def view(self, pair: Pair, offset: npt.NDArray[np.float64], t: float) -> Image:
        scene = self.image if pair.disc is None else self._with_disc(pair.disc, offset, t)
        to_scene = np.array([[1.0, 0.0, offset[0]], [0.0, 1.0, offset[1]], [0.0, 0.0, 1.0]])
        warp = to_scene @ np.linalg.inv(pair.camera(t))
        flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
        return np.asarray(cv2.warpPerspective(scene, warp, self.size, flags=flags), dtype=np.uint8)

    def _with_disc(self, disc: ObjectMove, offset: npt.NDArray[np.float64], t: float) -> Image:
        position = offset + np.array(disc.start) + t * np.array(disc.travel)
        shift = np.array([[1.0, 0.0, position[0]], [0.0, 1.0, position[1]]])
        size = (self.image.shape[1], self.image.shape[0])
        moved = cv2.warpAffine(self.disc, shift, size, flags=cv2.INTER_CUBIC).astype(np.float32)
        alpha = cv2.warpAffine(self.disc_alpha, shift, size, flags=cv2.INTER_LINEAR)[..., None]
        composed = self.image.astype(np.float32) * (1.0 - alpha) + moved * alpha
        return np.asarray(np.clip(np.rint(composed), 0, 255), dtype=np.uint8)


def draw_pairs(seed: int, cameras: int, objects: int, size: tuple[int, int]) -> list[Pair]:
    """`cameras` camera pairs (kinds and photos in turn, parameters from the seed), then `objects` object
    pairs; a draw that leaves its photograph is drawn again."""
    rng = np.random.default_rng(seed)
    width, height = size
    scenes = {photo: Scene(photo, size) for photo in PHOTOS}
    pairs: list[Pair] = []
    for index in range(cameras):
        photo, kind = PHOTOS[index % len(PHOTOS)], KINDS[index % len(KINDS)]
        while True:
            generator, description = draw_camera(rng, kind, width, height)
            pair = Pair(photo, kind, description, generator)
            if scenes[photo].placement(pair) is not None:
                break
        pairs.append(pair)
    radius = round(0.14 * height)
    for index in range(objects):
        photo = PHOTOS[index % len(PHOTOS)]
        while True:
            angle = float(rng.uniform(0, 2 * math.pi))
            length = float(rng.uniform(0.05, 0.15)) * width
            travel = (length * math.cos(angle), length * math.sin(angle))
            start = (
                float(rng.uniform(0.1 * width, 0.9 * width - 2 * radius)),
                float(rng.uniform(0.1 * height, 0.9 * height - 2 * radius)),
            )
            end = (start[0] + travel[0], start[1] + travel[1])
            if not (0 <= end[0] <= width - 2 * radius and 0 <= end[1] <= height - 2 * radius):
                continue
            generator = (
                _pan(*(float(v) for v in rng.uniform(-0.06, 0.06, 2) * width)) if index % 2 else np.zeros((3, 3))
            )
            kind = "pan+object" if index % 2 else "object"
            description = f"disc travels ({travel[0]:+.0f},{travel[1]:+.0f}) px" + (
                f", pan ({generator[0, 2]:+.0f},{generator[1, 2]:+.0f})" if index % 2 else ""
            )
            pair = Pair(photo, kind, description, generator, ObjectMove(start, travel))
            if scenes[photo].placement(pair) is not None:
                break
        pairs.append(pair)
    return pairs


# --- quality -----------------------------------------------------------------------------------------------


def minterpolate_frames(a: Image, b: Image, indices: tuple[int, ...]) -> list[Image]:
    """minterpolate's frames `indices` (at 24 fps) between A at 0 s and B at 1 s, as raw RGB (through yuv444p,
    its own format, so no chroma is lost). B is sent twice: minterpolate needs a frame after the one it
    interpolates towards."""
    height, width = a.shape[:2]
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", "1", "-i", "pipe:0",
               "-vf", f"format=yuv444p,{MINTERPOLATE},format=rgb24", "-frames:v", str(max(indices) + 1),
               "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]  # fmt: skip
    completed = subprocess.run(command, input=a.tobytes() + b.tobytes() * 2, capture_output=True, check=True)
    frames = np.frombuffer(completed.stdout, dtype=np.uint8).reshape(-1, height, width, 3)
    return [np.ascontiguousarray(frames[index]) for index in indices]


def _psnr(truth: Image, frame: Image) -> float:
    mse = float(np.mean((truth.astype(np.float64) - frame.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


@dataclass
class PairResult:
    pair: Pair
    method: str
    psnr: dict[str, dict[float, float]]  # method name -> t -> dB


def seen_mask(pair: Pair, t: float, width: int, height: int) -> npt.NDArray[np.bool_]:
    """The pixels of the true frame at t that A or B shows: elsewhere neither end has the content, and no
    method can know it (the corner of the middle frame of a diagonal pan, say)."""
    ys, xs = np.mgrid[0:height, 0:width]
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    to_a = np.linalg.inv(pair.camera(t))
    seen = np.zeros(xs.size, dtype=bool)
    for matrix in (to_a, pair.camera(1.0) @ to_a):
        mapped = matrix @ points
        x, y = mapped[0] / mapped[2], mapped[1] / mapped[2]
        seen |= (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    return seen.reshape(height, width)


def measure_pair(pair: Pair, scene: Scene) -> PairResult:
    offset = scene.placement(pair)
    assert offset is not None
    a, b = scene.view(pair, offset, 0.0), scene.view(pair, offset, 1.0)
    plan = plan_morph(a, b)
    interpolated = minterpolate_frames(a, b, tuple(round(24 * t) for t in TIMES))
    scores: dict[str, dict[float, float]] = {"motion": {}, "crossfade": {}, "minterpolate": {}, "motion, seen": {}}
    for t, theirs in zip(TIMES, interpolated, strict=True):
        truth = scene.view(pair, offset, t)
        ours = frame_at(plan, a, b, t)
        scores["motion"][t] = _psnr(truth, ours)
        seen = seen_mask(pair, t, *scene.size)
        scores["motion, seen"][t] = _psnr(truth[seen], ours[seen])
        scores["crossfade"][t] = _psnr(truth, crossfade_at(a, b, t))
        scores["minterpolate"][t] = _psnr(truth, theirs)
    return PairResult(pair, plan.method, scores)


def other_pace_pair(scene: Scene) -> tuple[Image, Image, dict[float, Image]]:
    """A pan while zooming and rolling about the frame centre, the centre moving at constant speed over the
    scene (not a steady move): the two ends and the true frames."""
    width, height = scene.size
    centre = np.array([(scene.image.shape[1] - 1) / 2, (scene.image.shape[0] - 1) / 2])
    frame_centre = np.array([(width - 1) / 2, (height - 1) / 2])

    def view(t: float) -> Image:
        angle = math.radians(6.0 * t)
        linear = np.linalg.inv(
            1.3**t * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        )
        at = centre + t * np.array([0.12 * width, -0.05 * width])
        affine = np.hstack([linear, (at - linear @ frame_centre)[:, None]])
        flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
        return np.asarray(cv2.warpAffine(scene.image, affine, scene.size, flags=flags), dtype=np.uint8)

    return view(0.0), view(1.0), {t: view(t) for t in TIMES}


def _stats(values: list[float]) -> str:
    return f"{statistics.fmean(values):5.1f} {float(np.percentile(values, 5)):5.1f} {min(values):5.1f}"


def quality(seed: int, cameras: int, objects: int) -> tuple[list[PairResult], list[PairResult]]:
    pairs = draw_pairs(seed, cameras, objects, QUALITY_SIZE)
    scenes = {photo: Scene(photo, QUALITY_SIZE) for photo in PHOTOS}
    results = []
    for index, pair in enumerate(pairs):
        result = measure_pair(pair, scenes[pair.photo])
        mid = {name: scores[0.5] for name, scores in result.psnr.items()}
        print(
            f"  {index + 1:2d} {pair.photo:9s} {pair.kind:11s} {result.method:16s} t=1/2: motion {mid['motion']:5.1f}"
            f"  minterpolate {mid['minterpolate']:5.1f}  crossfade {mid['crossfade']:5.1f}   {pair.description}",
            flush=True,
        )
        results.append(result)
    return results[:cameras], results[cameras:]


def report_quality(cameras: list[PairResult], objects: list[PairResult]) -> None:
    print(f"quality: {len(cameras)} random camera pairs, PSNR dB: mean / 5th percentile / worst")
    print(f"  {'method':13s}" + "".join(f"   t={t:<4}           " for t in TIMES))
    for method in ("motion", "minterpolate", "crossfade", "motion, seen"):
        cells = "".join(f"   {_stats([r.psnr[method][t] for r in cameras])}" for t in TIMES)
        print(f"  {method:13s}{cells}")
    print("  ('motion, seen': over the pixels A or B shows; the rest of a frame is content neither end has)")
    served: dict[str, int] = {}
    for result in cameras:
        served[result.method] = served.get(result.method, 0) + 1
    print("  task_info.method: " + ", ".join(f"{name} {count}" for name, count in sorted(served.items())))
    for kind in KINDS:
        of_kind = [r for r in cameras if r.pair.kind == kind]
        if of_kind:
            worst = min(min(r.psnr["motion"].values()) for r in of_kind)
            mean = statistics.fmean(r.psnr["motion"][0.5] for r in of_kind)
            print(
                f"    {kind:12s} {len(of_kind):2d} pairs: motion mean at t=1/2 {mean:5.1f}, worst at any t {worst:5.1f}"
            )
    print(f"quality: {len(objects)} moving-object pairs, PSNR dB at t = 1/2 (mean / 5th percentile / worst)")
    for method in ("motion", "minterpolate", "crossfade"):
        print(f"  {method:13s}   {_stats([r.psnr[method][0.5] for r in objects])}")
    at_least = sum(r.psnr["motion"][0.5] >= r.psnr["minterpolate"][0.5] for r in objects)
    print(f"  motion >= minterpolate at t=1/2 on {at_least} of {len(objects)} object pairs")
    every = [v for r in cameras for v in r.psnr["motion"].values()]
    p5 = min(float(np.percentile([r.psnr["motion"][t] for r in cameras], 5)) for t in TIMES)
    print("targets (camera pairs: >= 30 dB at every t, 5th percentile >= 32 dB; objects: >= minterpolate at t=1/2)")
    print(f"  worst camera pair at any t {min(every):5.1f} dB: {'met' if min(every) >= 30 else 'MISSED'}")
    seen = min(v for r in cameras for v in r.psnr["motion, seen"].values())
    print(f"    (over the pixels A or B shows: worst {seen:5.1f} dB)")
    print(f"  lowest 5th percentile over t {p5:5.1f} dB: {'met' if p5 >= 32 else 'MISSED'}")
    objects_mean = statistics.fmean(r.psnr["motion"][0.5] for r in objects) if objects else float("nan")
    theirs_mean = statistics.fmean(r.psnr["minterpolate"][0.5] for r in objects) if objects else float("nan")
    verdict = "met" if at_least == len(objects) else f"MISSED on {len(objects) - at_least}"
    print(f"  objects at t=1/2: motion {objects_mean:5.1f} vs minterpolate {theirs_mean:5.1f} dB (means): {verdict}")


def report_other_pace() -> None:
    scene = Scene("astronaut", QUALITY_SIZE)
    a, b, truths = other_pace_pair(scene)
    plan = plan_morph(a, b)
    ours = " ".join(f"{_psnr(truths[t], frame_at(plan, a, b, t)):5.1f}" for t in TIMES)
    print("other pace (pan while zooming 1.3x and rolling 6 deg about the centre, centre at constant speed; not in the")
    print(f"  verdict): motion at t = 1/4, 1/2, 3/4: {ours} dB ({plan.method})")


# --- speed -------------------------------------------------------------------------------------------------


def _reelgate() -> list[str]:
    script = Path(sys.executable).with_name("reelgate")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "reelgate.cli"]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Timing:
    wall_s: float
    cpu_s: float


def _median(runs: list[Timing]) -> Timing:
    return Timing(statistics.median(r.wall_s for r in runs), statistics.median(r.cpu_s for r in runs))


def time_generate(images: list[Path], prompt: str, output: Path, env: dict[str, str], repeats: int) -> Timing:
    """The whole `reelgate generate` process: start to exit, the MP4 closed."""
    command = [*_reelgate(), "generate", *[arg for image in images for arg in ("--image", str(image))],
               "--prompt", prompt, "-o", str(output)]  # fmt: skip
    runs = []
    for _ in range(repeats):
        cpu, started = _children_cpu_s(), time.perf_counter()
        completed = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stdout[-2000:]}{completed.stderr[-2000:]}")
        runs.append(Timing(time.perf_counter() - started, _children_cpu_s() - cpu))
    return _median(runs)


def time_engine(images: list[Image], size: tuple[int, int], workdir: Path, repeats: int) -> Timing:
    engine = MotionEngine(short_side_px=size[1])
    job = Job(task_id="bench", images=images, prompt="", aspect_ratio="16:9", duration_s=5, seed=1)
    engine.run(job, EngineOnlyContext(workdir), workdir / "warm.mp4")  # warm: imports, OpenCV's threads
    runs = []
    for _ in range(repeats):
        cpu, children, started = time.process_time(), _children_cpu_s(), time.perf_counter()
        engine.run(job, EngineOnlyContext(workdir), workdir / "engine.mp4")
        spent = time.process_time() - cpu + _children_cpu_s() - children
        runs.append(Timing(time.perf_counter() - started, spent))
    return _median(runs)


def time_minterpolate(a: Path, b: Path, output: Path) -> Timing:
    """5 s at 24 fps from A (0 s) to B (5 s) with the minterpolate above, encoded as the engine encodes."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-framerate", "1/5", "-i", str(output.with_name("pair-%d.png")),
               "-vf", MINTERPOLATE, "-frames:v", "120",
               "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-threads", "2",
               "-movflags", "+faststart", str(output)]  # fmt: skip
    # minterpolate needs a frame after B: the image sequence is A, B, B.
    for index, source in enumerate((a, b, b)):
        shutil.copyfile(source, output.with_name(f"pair-{index}.png"))
    cpu, started = _children_cpu_s(), time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return Timing(time.perf_counter() - started, _children_cpu_s() - cpu)


def time_worker_job(a: Path, b: Path, size: tuple[int, int], repeats: int) -> Timing:
    """Claim to finish of a two-image task run by `reelgate serve` with one in-process worker."""
    import asyncio
    import base64

    import httpx
    from _common import free_port, fresh_home, prepared_settings, settings_env, start_process, wait_ready

    from reelgate.db.models import Task
    from reelgate.resources import database_for

    home = fresh_home("motion-pairs")
    settings, key = prepared_settings(home, motion_short_side_px=size[1])
    port = free_port()
    server = start_process(
        ["-m", "reelgate.cli", "serve", "--port", str(port), "--workers", "1"],
        settings_env(settings),
        home / "serve.log",
    )
    uris = ["data:image/png;base64," + base64.b64encode(path.read_bytes()).decode() for path in (a, b)]
    body = {"model": "kling-o1-image-to-video", "prompt": "the camera moves", "duration": 5, "image_urls": uris}

    async def finished(task_id: str) -> Task:
        db = database_for(settings)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                async with db.read() as session:
                    task = await session.get(Task, task_id)
                    if task is not None and task.finished_at is not None:
                        return task
                await asyncio.sleep(0.05)
            raise RuntimeError(f"{task_id} never finished")
        finally:
            await db.dispose()

    runs = []
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", timeout_s=60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}) as client:
            for _ in range(repeats + 1):  # the first one warms the worker up (imports), and is not counted
                response = client.post("/v1/videos/generations", json=body, timeout=60)
                response.raise_for_status()
                task = asyncio.run(finished(response.json()["id"]))
                if task.status != "completed" or task.started_at is None or task.finished_at is None:
                    raise RuntimeError(f"the task ended {task.status}: {task.error_message}")
                runs.append(Timing(task.finished_at - task.started_at, float("nan")))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    return _median(runs[1:])


_MEMORY_CHILD = """
import runpy, sys
sys.path.insert(0, {bench!r})
import _peak_rss
probe = _peak_rss.PeakRss()
sys.argv = ["reelgate", "generate", "--image", {a!r}, "--image", {b!r}, "--prompt", "x", "--duration", "10",
            "-o", {output!r}]
try:
    runpy.run_module("reelgate.cli", run_name="__main__")
except SystemExit as exit:
    if exit.code not in (0, None):
        raise
print(*probe.stop())
"""


def peak_memory_mb(a: Path, b: Path, output: Path, env: dict[str, str]) -> tuple[float, float]:
    code = _MEMORY_CHILD.format(bench=str(Path(__file__).resolve().parent), a=str(a), b=str(b), output=str(output))
    completed = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    process_kb, encoder_kb = (int(v) for v in completed.stdout.split()[-2:])
    return process_kb / 1024, encoder_kb / 1024


def speed(seed: int, quick: bool) -> None:
    size = QUICK_SPEED_SIZE if quick else SPEED_SIZE
    repeats = 1 if quick else 3
    rng = np.random.default_rng(seed + 1)
    scene = Scene("astronaut", size)
    while True:
        generator, description = draw_camera(rng, "combined", *size)
        pair = Pair("astronaut", "combined", description, generator)
        offset = scene.placement(pair)
        if offset is not None:
            break
    a, b = scene.view(pair, offset, 0.0), scene.view(pair, offset, 1.0)
    with tempfile.TemporaryDirectory(prefix="reelgate-bench-pairs-") as tmp:
        workdir = Path(tmp)
        paths = [workdir / "a.png", workdir / "b.png"]
        for path, image in zip(paths, (a, b), strict=True):
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        env = {"REELGATE_HOME": str(workdir / "home"), "REELGATE_MOTION_SHORT_SIDE_PX": str(size[1])}
        print(f"speed at {size[0]}x{size[1]}, 5 s video, median of {repeats}; {description}", flush=True)
        two = time_generate(paths, "the camera moves", workdir / "two.mp4", env, repeats)
        one = time_generate(paths[:1], "slow push in", workdir / "one.mp4", env, repeats)
        engine = time_engine([a, b], size, workdir, repeats)
        worker = time_worker_job(paths[0], paths[1], size, 1 if quick else 2)
        baseline = time_minterpolate(paths[0], paths[1], workdir / "minterpolate.mp4")
        memory = peak_memory_mb(paths[0], paths[1], workdir / "ten.mp4", env)

    def row(name: str, timing: Timing) -> str:
        cpu = f"{timing.cpu_s:6.2f} s cpu" if not math.isnan(timing.cpu_s) else " " * 12
        return f"  {name:44s} {timing.wall_s:6.2f} s wall  {cpu}"

    print(row("reelgate generate, two frames -> 5 s", two))
    print(row("reelgate generate, one image -> 5 s", one))
    print(row("worker job (claim to finish), two frames -> 5 s", worker))
    print(row("engine alone (MotionEngine.run, warm), two frames", engine))
    print(row("ffmpeg minterpolate, the same 5 s", baseline))
    ratios = [
        f"generate/engine {two.wall_s / engine.wall_s:4.2f}",
        f"worker/engine {worker.wall_s / engine.wall_s:4.2f}",
        f"minterpolate/generate {baseline.wall_s / two.wall_s:5.1f}x",
        f"minterpolate/engine {baseline.wall_s / engine.wall_s:5.1f}x",
    ]
    print(f"  ratios: {', '.join(ratios)}")
    process_mb, encoder_mb = memory
    total_mb = process_mb + encoder_mb
    print(f"  peak memory, reelgate generate two frames -> 10 s: {process_mb:.1f} MB + encoder {encoder_mb:.1f} MB")
    if not quick:
        faster = baseline.wall_s / two.wall_s
        print("targets (2 cores): two frames < 4 s and >= 12x minterpolate; one image < 2.5 s; 10 s job < 400 MB")
        print(f"  two frames {two.wall_s:.2f} s: {'met' if two.wall_s < 4 else 'MISSED'}")
        print(f"  {faster:.1f}x minterpolate: {'met' if faster >= 12 else 'MISSED'}")
        print(f"  one image {one.wall_s:.2f} s: {'met' if one.wall_s < 2.5 else 'MISSED'}")
        print(f"  memory {total_mb:.0f} MB: {'met' if total_mb < 400 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="draws the camera pairs (default %(default)s)")
    parser.add_argument("--pairs", type=int, default=40, help="random camera pairs (default %(default)s)")
    parser.add_argument("--objects", type=int, default=8, help="moving-object pairs (default %(default)s)")
    parser.add_argument("--no-speed", action="store_true", help="quality only")
    parser.add_argument("--quick", action="store_true", help="4 + 1 pairs, speed at 160x90, one run each")
    options = parser.parse_args()
    cameras, objects = (4, 1) if options.quick else (options.pairs, options.objects)
    load = os.getloadavg()
    averages = " ".join(f"{value:.1f}" for value in load)
    print(f"motion_pairs: seed {options.seed}, {os.cpu_count()} cpus, load average {averages}")
    print(f"quality at {QUALITY_SIZE[0]}x{QUALITY_SIZE[1]} on {', '.join(PHOTOS)}", flush=True)
    started = time.perf_counter()
    camera_results, object_results = quality(options.seed, cameras, objects)
    report_quality(camera_results, object_results)
    if not options.quick:
        report_other_pace()
    print(f"(quality took {time.perf_counter() - started:.0f} s)", flush=True)
    if not options.no_speed:
        speed(options.seed, options.quick)
    load = os.getloadavg()
    print(f"load average at the end {' '.join(f'{value:.1f}' for value in load)}")


if __name__ == "__main__":
    main()
