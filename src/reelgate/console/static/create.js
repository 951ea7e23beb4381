// Create: the frames (dropped or picked, uploaded at once through the files API, previewed as the engine
// frames them), the prompt, the ratio and duration, the price the key would be charged, and Generate. Every
// refusal of the API is shown next to the field it names.

import { ApiError, call } from "./api.js";
import { h, replace, uid } from "./dom.js";
import { credits, duration } from "./format.js";
import { ASPECT_RATIOS, drawFramed, nearestAspectRatio, nominalFrame } from "./framing.js";

const MAX_PROMPT = 5000;
const RATIO_WORDS = { "16:9": "16:9 (landscape)", "9:16": "9:16 (portrait)", "1:1": "1:1 (square)" };
const ACCEPT = "image/jpeg,image/png,image/webp";

export function createPage(context) {
  const { signal } = context;
  const errors = {};
  const fields = {};

  function errorLine(name) {
    errors[name] = h("p", { id: uid(`${name}-error`), class: "field-error", role: "alert" });
    return errors[name];
  }

  function showError(name, text) {
    (errors[name] || errors.generate).textContent = text;
  }

  function clearErrors() {
    for (const line of Object.values(errors)) line.textContent = "";
  }

  // --- the frames --------------------------------------------------------------------------------------
  const frames = [
    frameSlot("first", "First frame", true, "Preview of the start, framed as the video will be"),
    frameSlot("last", "Last frame", false, "Preview of the end, framed as the video will be"),
  ];

  // `previewName` leaves out the field's label: "First frame" names the file input alone, for people and for
  // automation that finds controls by their labels.
  function frameSlot(name, label, required, previewName) {
    const inputId = uid(name);
    const hintId = uid(`${name}-hint`);
    const error = errorLine(name);
    const input = h("input", {
      id: inputId,
      type: "file",
      accept: ACCEPT,
      "aria-describedby": `${hintId} ${error.id}`,
    });
    const status = h("span", { class: "upload-status", "aria-live": "polite" });
    const canvas = h("canvas", { class: "preview", hidden: true, role: "img", "aria-label": previewName });
    const remove = h("button", { type: "button", class: "quiet", hidden: true }, `Remove the ${label.toLowerCase()}`);
    const zone = h(
      "div",
      { class: "drop" },
      // The label is the name alone ("First frame", "Last frame": part of the interface); "optional" is said
      // by the hint, which the control is described by.
      h("label", { for: inputId }, label),
      input,
      h(
        "p",
        { id: hintId, class: "hint" },
        required ? "Drop an image here or choose one: JPEG, PNG or WebP, up to 10 MB." : "Optional: with a last frame, the video ends on it.",
      ),
      canvas,
      h("div", { class: "row" }, status, remove),
      error,
    );
    const slot = { name, label, input, canvas, status, remove, zone, file: null, bitmap: null, upload: null };
    input.addEventListener("change", () => choose(slot, input.files && input.files[0] ? input.files[0] : null));
    remove.addEventListener("click", () => {
      input.value = "";
      choose(slot, null);
      input.focus();
    });
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const files = event.dataTransfer && event.dataTransfer.files;
      if (!files || files.length === 0) return;
      input.files = files;
      choose(slot, files[0]);
    });
    return slot;
  }

  async function choose(slot, file) {
    errors[slot.name].textContent = "";
    forget(slot);
    slot.file = file;
    slot.bitmap = null;
    slot.canvas.hidden = true;
    slot.remove.hidden = file === null;
    slot.status.textContent = "";
    formChanged();
    if (file === null) return;
    // Uploaded at once: the answer (or the 400 naming what is wrong with the file) comes while the prompt is
    // still being written, and Generate only has to wait for what is still on its way.
    slot.upload = upload(slot, file);
    try {
      slot.bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    } catch {
      slot.bitmap = null; // not an image this browser can draw; the server says what it thinks of it
    }
    if (slot.file !== file) return;
    if (slot.bitmap && slot.name === "first" && !ratioTouched) {
      // The API's own choice when no ratio is given: the allowed ratio nearest to the first image.
      fields.ratio.value = nearestAspectRatio(slot.bitmap.width, slot.bitmap.height);
      refreshQuote();
    }
    drawPreviews();
  }

  async function upload(slot, file) {
    slot.status.textContent = "Uploading…";
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const answer = await call("POST", "/api/v1/files/upload/stream", { form, signal });
      if (slot.file === file) slot.status.textContent = `Uploaded (${answer.data.file_id})`;
      return { ok: true, fileUrl: answer.data.file_url, fileId: answer.data.file_id, used: false };
    } catch (error) {
      if (error.name === "AbortError") return { ok: false };
      if (context.signedOutBy(error)) return { ok: false };
      if (slot.file === file) {
        slot.status.textContent = "Not uploaded";
        errors[slot.name].textContent = error instanceof ApiError ? error.describe() : String(error);
      }
      return { ok: false, error };
    }
  }

  /** An upload that no task used is deleted when its file is replaced: it would only fill the quota. */
  function forget(slot) {
    const pending = slot.upload;
    slot.upload = null;
    if (!pending) return;
    pending.then((done) => {
      if (done.ok && !done.used) call("DELETE", `/api/v1/files/${encodeURIComponent(done.fileId)}`).catch(() => {});
    });
  }

  function drawPreviews() {
    const ratio = fields.ratio.value;
    const frame = quote && quote.aspect_ratio === ratio && quote.width ? { width: quote.width, height: quote.height } : nominalFrame(ratio);
    for (const slot of frames) {
      if (!slot.bitmap) continue;
      drawFramed(slot.canvas, slot.bitmap, frame.width, frame.height);
      slot.canvas.dataset.ratio = ratio;
      slot.canvas.hidden = false;
    }
  }

  // --- prompt, ratio, duration, model, callback -----------------------------------------------------------
  const promptId = uid("prompt");
  const countId = uid("prompt-count");
  fields.prompt = h("textarea", {
    id: promptId,
    rows: 4,
    maxlength: MAX_PROMPT,
    required: true,
    "aria-describedby": `${countId} ${errorLine("prompt").id}`,
  });
  const count = h("p", { id: countId, class: "hint" }, `0 / ${MAX_PROMPT} characters`);
  fields.prompt.addEventListener("input", () => {
    count.textContent = `${fields.prompt.value.length} / ${MAX_PROMPT} characters`;
    formChanged();
  });

  function select(name, label, options, value) {
    const id = uid(name);
    const control = h(
      "select",
      { id, "aria-describedby": errorLine(name).id },
      options.map(([optionValue, text]) => h("option", { value: optionValue, selected: optionValue === value }, text)),
    );
    fields[name] = control;
    return h("div", { class: "field" }, h("label", { for: id }, label), control, errors[name]);
  }

  let ratioTouched = false;
  const ratioField = select("ratio", "Aspect ratio", ASPECT_RATIOS.map((r) => [r, RATIO_WORDS[r]]), "16:9");
  const durationField = select("duration", "Duration", [["5", "5 seconds"], ["10", "10 seconds"]], "5");
  const modelField = select("model", "Model", [], "");
  fields.ratio.addEventListener("change", () => {
    ratioTouched = true;
    refreshQuote();
    drawPreviews();
  });
  fields.duration.addEventListener("change", refreshQuote);
  fields.model.addEventListener("change", refreshQuote);
  errors.aspect_ratio = errors.ratio;

  const callbackId = uid("callback");
  const callbackHintId = uid("callback-hint");
  fields.callback = h("input", {
    id: callbackId,
    type: "url",
    inputmode: "url",
    placeholder: "https://example.com/hooks/reelgate",
    "aria-describedby": `${callbackHintId} ${errorLine("callback_url").id}`,
  });
  fields.callback.addEventListener("input", formChanged);

  // --- price --------------------------------------------------------------------------------------------
  const price = h("output", { class: "price", "aria-live": "polite" }, "Price: …");
  let quote = null;
  let quoteSeq = 0;

  async function refreshQuote() {
    formChanged();
    if (!fields.model.value) return;
    const seq = ++quoteSeq;
    const query = new URLSearchParams({
      model: fields.model.value,
      aspect_ratio: fields.ratio.value,
      duration: fields.duration.value,
    });
    try {
      const answer = await call("GET", `/v1/videos/quote?${query}`, { signal });
      if (seq !== quoteSeq) return;
      quote = answer;
      const rule = answer.billing_rule === "per_second" ? `per second × ${answer.duration} s` : "per task";
      const frame = answer.width ? ` · ${answer.width}×${answer.height} on ${answer.engine}` : ` · on ${answer.engine}`;
      replace(
        price,
        h("strong", {}, `Price: ${credits(answer.credits)} credits`),
        ` (${rule}) · ${credits(answer.available)} available${frame} · about ${duration(answer.estimated_time)}`,
        answer.affordable ? "" : h("span", { class: "warn" }, " · Not enough credits for this video"),
      );
      drawPreviews();
    } catch (error) {
      if (error.name === "AbortError" || seq !== quoteSeq || context.signedOutBy(error)) return;
      quote = null;
      replace(price, h("span", { class: "warn" }, `No price: ${error instanceof ApiError ? error.describe() : error}`));
    }
  }

  // --- generate -----------------------------------------------------------------------------------------
  const generate = h("button", { type: "submit", "aria-describedby": errorLine("generate").id }, "Generate");
  let idempotencyKey = crypto.randomUUID();

  function formChanged() {
    // The same form sent twice (a double click, a retry after a lost answer) is one task; a changed form is a
    // new request and needs a new key (the API refuses a key reused with another body).
    idempotencyKey = crypto.randomUUID();
  }

  const PARAM_FIELD = { prompt: "prompt", aspect_ratio: "ratio", duration: "duration", model: "model", callback_url: "callback_url", "image_urls[0]": "first", "image_urls[1]": "last", file: "first" };

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    const [first, last] = frames;
    if (!first.file) {
      showError("first", "Choose a first frame: the video starts on it.");
      first.input.focus();
      return;
    }
    if (!fields.prompt.value.trim()) {
      showError("prompt", "Write a prompt: what should happen in the video?");
      fields.prompt.focus();
      return;
    }
    generate.disabled = true;
    generate.textContent = "Generating…";
    try {
      const uploads = [];
      for (const slot of [first, last]) {
        if (!slot.file) continue;
        const done = await slot.upload;
        if (!done.ok) {
          if (done.error) errors[slot.name].textContent = done.error.describe();
          showError("generate", `The ${slot.label.toLowerCase()} was not uploaded; choose another file.`);
          return;
        }
        uploads.push(done);
      }
      const body = {
        model: fields.model.value,
        prompt: fields.prompt.value,
        image_urls: uploads.map((done) => done.fileUrl),
        aspect_ratio: fields.ratio.value,
        duration: Number(fields.duration.value),
      };
      if (fields.callback.value.trim()) body.callback_url = fields.callback.value.trim();
      const task = await call("POST", "/v1/videos/generations", {
        body,
        headers: { "Idempotency-Key": idempotencyKey },
        signal,
      });
      for (const done of uploads) done.used = true;
      context.go(`tasks/${task.id}`);
    } catch (error) {
      if (error.name === "AbortError" || context.signedOutBy(error)) return;
      if (!(error instanceof ApiError)) {
        showError("generate", String(error));
        return;
      }
      const field = PARAM_FIELD[error.param] || "generate";
      showError(field, error.describe());
      if (field !== "generate") showError("generate", `Not created: see ${error.param}.`);
    } finally {
      generate.disabled = false;
      generate.textContent = "Generate";
    }
  }

  const form = h(
    "form",
    { class: "create", novalidate: true },
    h("h1", {}, "Create a video"),
    h("div", { class: "frames" }, frames.map((slot) => slot.zone)),
    h(
      "div",
      { class: "field" },
      h("label", { for: promptId }, "Prompt"),
      fields.prompt,
      count,
      errors.prompt,
    ),
    h("div", { class: "choices" }, ratioField, durationField, modelField),
    h(
      "div",
      { class: "field" },
      h("label", { for: callbackId }, "Callback URL"),
      fields.callback,
      h("p", { id: callbackHintId, class: "hint" }, "Optional, https: the task is POSTed there when it ends (signed)."),
      errors.callback_url,
    ),
    h("div", { class: "submit" }, price, generate, errors.generate),
  );
  form.addEventListener("submit", submit);

  call("GET", "/v1/account", { signal })
    .then((account) => {
      const models = account.key.allowed_models || [];
      replace(fields.model, models.map((name) => h("option", { value: name }, name)));
      if (models.length === 0) showError("model", "This key may use no model.");
      refreshQuote();
    })
    .catch((error) => {
      if (error.name !== "AbortError" && !context.signedOutBy(error)) showError("generate", error.describe());
    });
  return form;
}
