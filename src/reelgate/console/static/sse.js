// Following a task's event stream (GET /v1/tasks/{id}/events, docs/events.md). EventSource cannot send an
// Authorization header, and the API takes the key only there (never in a URL, where logs and histories keep
// it), so the stream is read with fetch() and parsed here as the HTML standard parses text/event-stream.

import { ROOT, authHeaders, errorOf } from "./api.js";

const TERMINAL = new Set(["completed", "failed"]);

/**
 * Calls onEvent({event, id, data}) for every event until the terminal one (returned), `signal` aborts, or an
 * answer of the API refuses the stream (thrown as ApiError before any event). A dropped connection is resumed
 * after the server's `retry:` with Last-Event-ID, as EventSource would, so nothing is missed.
 */
export async function followTask(taskId, onEvent, signal) {
  let lastEventId = null;
  let retryMs = 3000;
  for (;;) {
    const headers = { ...authHeaders(), Accept: "text/event-stream" };
    if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
    let response;
    try {
      response = await fetch(`${ROOT}/v1/tasks/${encodeURIComponent(taskId)}/events`, {
        headers,
        cache: "no-store",
        credentials: "omit",
        signal,
      });
    } catch (error) {
      if (signal?.aborted) return null;
      await sleep(retryMs, signal);
      continue;
    }
    if (!response.ok) {
      let data = null;
      try {
        data = await response.json();
      } catch {
        data = null;
      }
      throw errorOf(response, data);
    }
    try {
      for await (const event of parse(response.body, signal)) {
        if (event.id !== null) lastEventId = event.id;
        if (event.retry !== null) retryMs = event.retry;
        if (event.data === null) continue;
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          continue;
        }
        onEvent({ event: event.event, id: event.id, data });
        if (TERMINAL.has(event.event)) return data;
      }
    } catch (error) {
      if (signal?.aborted) return null;
    }
    if (signal?.aborted) return null;
    await sleep(retryMs, signal);
  }
}

/** The events of a text/event-stream body: {event, data, id, retry}. */
export async function* parse(body, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = fresh();
  const onAbort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split(/\r\n|\r|\n/);
      // The last piece may be half a line (or a "\r" whose "\n" is in the next chunk): keep it for later.
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (event.data !== null || event.event !== "message") yield event;
          event = fresh();
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: the server's heartbeat
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") event.data = event.data === null ? value : `${event.data}\n${value}`;
        else if (field === "event") event.event = value;
        else if (field === "id") event.id = value;
        else if (field === "retry" && /^\d+$/.test(value)) event.retry = Number(value);
      }
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

function fresh() {
  return { event: "message", data: null, id: null, retry: null };
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
