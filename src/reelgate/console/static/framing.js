// The engine's framing, to the pixel (src/reelgate/media/framing.py): an image is centre-cropped to exactly
// the frame's width:height, then scaled; nothing is padded or stretched. The preview draws the same crop, so
// what a user sees before submitting is what the first frame of the video will show.

export const ASPECT_RATIOS = ["16:9", "9:16", "1:1"];
const PARTS = { "16:9": [16, 9], "9:16": [9, 16], "1:1": [1, 1] };
// Ties go to 1:1, which favours neither orientation (framing.py _TIE_ORDER).
const TIE_ORDER = ["1:1", "16:9", "9:16"];

/** Python's round(): halves go to the even neighbour (Math.round sends them up). */
export function roundHalfEven(x) {
  const floor = Math.floor(x);
  const rest = x - floor;
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** The part of a srcW x srcH image the engine keeps for a width x height frame (framing.py fit_to_frame). */
export function cropBox(srcW, srcH, width, height) {
  let cropW;
  let cropH;
  // Cross products, not float ratios, so equal ratios never crop a stray pixel (as in framing.py).
  if (srcW * height > width * srcH) {
    cropW = Math.max(1, roundHalfEven((srcH * width) / height));
    cropH = srcH;
  } else {
    cropW = srcW;
    cropH = Math.max(1, roundHalfEven((srcW * height) / width));
  }
  return { x: Math.floor((srcW - cropW) / 2), y: Math.floor((srcH - cropH) / 2), width: cropW, height: cropH };
}

/** The allowed ratio nearest to width:height on log ratios, exactly (framing.py nearest_aspect_ratio). */
export function nearestAspectRatio(width, height) {
  let best = null;
  let bestNum = 0n;
  let bestDen = 1n;
  for (const name of TIE_ORDER) {
    const [w, h] = PARTS[name];
    let num = BigInt(width) * BigInt(h);
    let den = BigInt(height) * BigInt(w);
    if (num < den) [num, den] = [den, num]; // max(q, 1/q)
    if (best === null || num * bestDen < bestNum * den) {
      best = name;
      bestNum = num;
      bestDen = den;
    }
  }
  return best;
}

/** A frame of this ratio when the engine does not say its size: the ratio itself, at a preview size. */
export function nominalFrame(aspectRatio, shortSide = 360) {
  const [w, h] = PARTS[aspectRatio];
  return w >= h
    ? { width: Math.round((shortSide * w) / h), height: shortSide }
    : { width: shortSide, height: Math.round((shortSide * h) / w) };
}

/**
 * Draw `bitmap` into `canvas` as the engine frames it for a width x height frame. Transparency is shown on
 * white, as the engine composites it. The crop is left on the canvas (data-crop) for anyone to check.
 */
export function drawFramed(canvas, bitmap, width, height) {
  const box = cropBox(bitmap.width, bitmap.height, width, height);
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, width, height);
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  context.drawImage(bitmap, box.x, box.y, box.width, box.height, 0, 0, width, height);
  canvas.dataset.crop = `${box.x},${box.y},${box.width},${box.height}`;
  canvas.dataset.frame = `${width}x${height}`;
  canvas.dataset.source = `${bitmap.width}x${bitmap.height}`;
  return box;
}
