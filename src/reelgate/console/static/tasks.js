// The key's tasks, newest first and live (each unfinished one follows its event stream), and a task's page:
// the player, how long its link lives, task_info, the credit entries and the callback delivery log.

import { ApiError, call } from "./api.js";
import { h, replace, safeUrl } from "./dom.js";
import { ago, credits, dateTime, duration } from "./format.js";
import { followTask } from "./sse.js";

const PAGE = 20;
const CALLBACK_REFRESH_MS = 1000;
const UNFINISHED = new Set(["pending", "processing"]);

function progressBar(task) {
  const bar = h("div", {
    class: "progress",
    role: "progressbar",
    "aria-valuemin": 0,
    "aria-valuemax": 100,
    "aria-label": `Progress of ${task.id}`,
  });
  const fill = h("div", { class: "fill" });
  bar.append(fill);
  const eta = h("span", { class: "eta" });
  const update = (status, progress, estimated) => {
    bar.setAttribute("aria-valuenow", String(progress));
    bar.setAttribute("aria-valuetext", `${progress}%${UNFINISHED.has(status) ? `, about ${duration(estimated)} left` : ""}`);
    fill.style.width = `${progress}%`;
    eta.textContent = UNFINISHED.has(status) ? `${progress}% · about ${duration(estimated)} left` : `${progress}%`;
  };
  update(task.status, task.progress, task.task_info.estimated_time);
  return { element: h("div", { class: "progress-row" }, bar, eta), update };
}

function statusBadge(status) {
  return h("span", { class: `badge ${status}` }, status);
}

function errorText(task) {
  return task.error ? h("p", { class: "task-error" }, `${task.error.code}: ${task.error.message}`) : null;
}

function describe(error) {
  return error instanceof ApiError ? error.describe() : String(error);
}

/** Cancel while the API says it can; the answer (the task, now failed) replaces what is shown. */
function cancelButton(task, context, onDone, onError) {
  const button = h("button", { type: "button", class: "danger", "aria-label": "Cancel", title: `Cancel ${task.id}` }, "Cancel");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      onDone(await call("POST", `/v1/tasks/${encodeURIComponent(task.id)}/cancel`, { signal: context.signal }));
    } catch (error) {
      button.disabled = false;
      if (error.name !== "AbortError" && !context.signedOutBy(error)) onError(describe(error));
    }
  });
  return button;
}

// --- the list ----------------------------------------------------------------------------------------------

export function tasksPage(context) {
  const list = h("ol", { class: "tasks", "aria-live": "off" });
  const problem = h("p", { class: "field-error", role: "alert" });
  const more = h("button", { type: "button", class: "quiet", hidden: true }, "Show older tasks");
  const refresh = h("button", { type: "button", class: "quiet" }, "Refresh");
  let cursor = null;

  async function load(after) {
    problem.textContent = "";
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (after) query.set("after", after);
    try {
      const page = await call("GET", `/v1/tasks?${query}`, { signal: context.signal });
      if (!after) list.replaceChildren();
      for (const task of page.data) list.append(taskCard(task, context));
      if (!after && page.data.length === 0) list.append(h("li", { class: "empty" }, "No tasks yet. ", context.link("create", "Create one")));
      cursor = page.next_cursor;
      more.hidden = !page.has_more;
    } catch (error) {
      if (error.name !== "AbortError" && !context.signedOutBy(error)) problem.textContent = describe(error);
    }
  }
  more.addEventListener("click", () => load(cursor));
  refresh.addEventListener("click", () => load(null));
  load(null);
  return h(
    "section",
    {},
    h("div", { class: "heading-row" }, h("h1", {}, "Tasks"), refresh),
    problem,
    list,
    more,
  );
}

function taskCard(task, context) {
  const card = h("li", { class: "task", dataset: { taskId: task.id } });
  let state = task; // the task as last drawn
  let currentBar = null; // the bar of the newest drawing, which the stream's updates go to
  let streaming = false;
  const problem = h("p", { class: "field-error", role: "alert" });

  function draw(current) {
    state = current;
    currentBar = progressBar(current);
    const actions = h("div", { class: "actions" });
    if (current.task_info.can_cancel) {
      actions.append(cancelButton(current, context, draw, (text) => (problem.textContent = text)));
    }
    const poster = current.task_info.poster_url ? safeUrl(current.task_info.poster_url) : null;
    replace(
      card,
      poster ? h("img", { class: "thumb", src: poster, alt: "", loading: "lazy" }) : h("div", { class: "thumb none" }),
      h(
        "div",
        { class: "body" },
        h("div", { class: "row" }, statusBadge(current.status), context.link(`tasks/${current.id}`, current.id)),
        h("p", { class: "prompt" }, current.task_info.prompt || ""),
        h(
          "p",
          { class: "meta" },
          `${current.task_info.engine} · ${current.task_info.video_duration} s · ${current.task_info.aspect_ratio || "auto"} · ${ago(current.created)}`,
        ),
        UNFINISHED.has(current.status) ? currentBar.element : null,
        errorText(current),
        problem,
      ),
      actions,
    );
    if (UNFINISHED.has(current.status) && !streaming) {
      streaming = true;
      followTask(current.id, (event) => onEvent(event.data), context.signal)
        .catch((error) => {
          if (error.name !== "AbortError") problem.textContent = describe(error);
        })
        .finally(() => {
          streaming = false;
        });
    }
  }

  function onEvent(data) {
    if (data.task) draw(data.task);
    else if (data.status !== state.status) draw(moved(state, data));
    else currentBar.update(data.status, data.progress, data.estimated_time);
  }

  draw(task);
  return card;
}

/** The task with what an event says changed (its status, progress and time left). */
function moved(task, data) {
  return { ...task, status: data.status, progress: data.progress, task_info: { ...task.task_info, estimated_time: data.estimated_time } };
}

// --- one task ----------------------------------------------------------------------------------------------

export function taskPage(taskId, context) {
  const section = h("section", { class: "task-page" }, h("h1", {}, "Task"), h("p", { class: "hint" }, "Loading…"));
  const problem = h("p", { class: "field-error", role: "alert" });
  let followed = false;
  let state = null; // the task as last drawn
  let currentBar = null; // the bar of the newest drawing

  async function load() {
    try {
      const task = await call("GET", `/v1/tasks/${encodeURIComponent(taskId)}`, { signal: context.signal });
      draw(task);
    } catch (error) {
      if (error.name === "AbortError" || context.signedOutBy(error)) return;
      replace(section, h("h1", {}, "Task"), h("p", { class: "field-error", role: "alert" }, describe(error)), context.link("tasks", "All tasks"));
    }
  }

  function draw(task) {
    state = task;
    const bar = progressBar(task);
    currentBar = bar;
    const live = UNFINISHED.has(task.status);
    const parts = [
      h("div", { class: "heading-row" }, h("h1", {}, "Task ", h("code", {}, task.id)), statusBadge(task.status)),
      h("p", { class: "prompt full" }, task.task_info.prompt || ""),
      // Kept at 100 once completed, so the page says the work is done in the same place it showed it going.
      live || task.status === "completed" ? bar.element : null,
      errorText(task),
      problem,
    ];
    if (task.task_info.can_cancel) {
      parts.push(h("div", { class: "actions" }, cancelButton(task, context, draw, (text) => (problem.textContent = text))));
    }
    if (task.status === "completed" && task.results.length) parts.push(player(task));
    parts.push(infoTable(task));
    const creditsBox = h("div", {}, h("h2", {}, "Credits"), h("p", { class: "hint" }, "Loading…"));
    const callbacks = h("div", {}, h("h2", {}, "Callback deliveries"), h("p", { class: "hint" }, "Loading…"));
    parts.push(h("div", { class: "columns" }, creditsBox, callbacks));
    parts.push(h("p", {}, context.link("tasks", "All tasks")));
    replace(section, ...parts);
    loadCredits(task, creditsBox);
    loadCallbacks(task, callbacks);
    if (live && !followed) {
      followed = true;
      followTask(task.id, (event) => onEvent(event.data), context.signal)
        .catch((error) => {
          if (error.name !== "AbortError") problem.textContent = describe(error);
        })
        .finally(() => {
          followed = false;
        });
    }
  }

  function onEvent(data) {
    if (data.task) draw(data.task);
    else if (data.status !== state.status) draw(moved(state, data));
    else currentBar.update(data.status, data.progress, data.estimated_time);
  }

  function player(task) {
    const src = safeUrl(task.results[0]);
    const poster = task.task_info.poster_url ? safeUrl(task.task_info.poster_url) : null;
    const video = h("video", { controls: true, preload: "metadata", playsinline: true, src, poster });
    const expires = task.task_info.expires_at;
    const left = expires ? expires - Date.now() / 1000 : null;
    return h(
      "figure",
      { class: "player" },
      video,
      h(
        "figcaption",
        {},
        h("a", { href: src, download: `${task.id}.mp4`, class: "button" }, "Download"),
        expires
          ? h("span", { class: "hint" }, ` The link is valid until ${dateTime(expires)} (${left > 0 ? `${duration(left)} from now` : "expired"}); then the task and its video are deleted.`)
          : null,
      ),
    );
  }

  function infoTable(task) {
    const info = task.task_info;
    const rows = [
      ["Model", task.model],
      ["Engine", info.engine],
      ["Method", info.method],
      ["Seed", info.seed],
      ["Resolution", info.resolution],
      ["Aspect ratio", info.aspect_ratio],
      ["Duration", `${info.video_duration} s`],
      ["Created", dateTime(task.created)],
      ["Price", `${credits(task.usage.credits_reserved)} credits (${task.usage.billing_rule}, group ${task.usage.user_group})`],
    ].filter(([, value]) => value !== null && value !== undefined && value !== "");
    return h("div", {}, h("h2", {}, "Task info"), h("dl", { class: "facts" }, rows.map(([name, value]) => [h("dt", {}, name), h("dd", {}, String(value))])));
  }

  async function loadCredits(task, box) {
    try {
      const answer = await call("GET", `/v1/tasks/${encodeURIComponent(task.id)}/credits`, { signal: context.signal });
      replace(
        box,
        h("h2", {}, "Credits"),
        h("p", {}, `State: ${answer.state}`),
        h(
          "ul",
          { class: "entries" },
          answer.data.map((entry) => h("li", {}, h("strong", {}, entry.kind), ` ${credits(entry.credits)} credits · ${dateTime(entry.created)}`)),
        ),
      );
    } catch (error) {
      if (error.name !== "AbortError") replace(box, h("h2", {}, "Credits"), h("p", { class: "field-error" }, describe(error)));
    }
  }

  async function loadCallbacks(task, box) {
    const path = `/v1/tasks/${encodeURIComponent(task.id)}/callbacks`;
    const note = h("p", { class: "field-error", role: "alert" });
    try {
      const answer = await call("GET", path, { signal: context.signal });
      const items = answer.data.map((delivery) =>
        h(
          "li",
          {},
          h("p", {}, h("strong", {}, delivery.state), ` · series ${delivery.series} · `, h("code", {}, delivery.webhook_id)),
          h("p", { class: "meta" }, delivery.url),
          h(
            "ol",
            { class: "attempts" },
            delivery.attempts.map((attempt) =>
              h(
                "li",
                {},
                `Attempt ${attempt.attempt}: ${attempt.ok ? "delivered" : "failed"}`,
                attempt.status_code ? ` · HTTP ${attempt.status_code}` : "",
                attempt.error ? ` · ${attempt.error.kind}: ${attempt.error.message}` : "",
                attempt.latency_ms !== null && attempt.latency_ms !== undefined ? ` · ${attempt.latency_ms} ms` : "",
                ` · ${dateTime(attempt.started_at)}`,
              ),
            ),
          ),
        ),
      );
      const parts = [h("h2", {}, "Callback deliveries")];
      if (items.length === 0) {
        parts.push(h("p", { class: "hint" }, UNFINISHED.has(task.status) ? "A callback is sent when the task ends, if it has a callback URL." : "None: this task has no callback URL."));
      } else {
        parts.push(h("ul", { class: "deliveries" }, items));
        const redeliver = h("button", { type: "button" }, "Redeliver");
        redeliver.addEventListener("click", async () => {
          redeliver.disabled = true;
          note.textContent = "";
          try {
            await call("POST", `${path}/redeliver`, { signal: context.signal });
            loadCallbacks(task, box);
          } catch (error) {
            redeliver.disabled = false;
            if (error.name !== "AbortError" && !context.signedOutBy(error)) note.textContent = describe(error);
          }
        });
        parts.push(redeliver, note);
      }
      replace(box, ...parts);
      if (answer.data.some((delivery) => delivery.state === "pending") && !context.signal.aborted) {
        // A series still running (its retries are 1, 2 and 4 s apart): show each attempt as it is made.
        setTimeout(() => {
          if (!context.signal.aborted && box.isConnected) loadCallbacks(task, box);
        }, CALLBACK_REFRESH_MS);
      }
    } catch (error) {
      if (error.name !== "AbortError") replace(box, h("h2", {}, "Callback deliveries"), h("p", { class: "field-error" }, describe(error)));
    }
  }

  load();
  return section;
}
