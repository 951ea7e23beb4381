// The admin views (an admin token signed in): accounts and grants, keys (created with limits, shown once,
// revoked), the workers registry and the credits audit. All of it is the admin API (/admin/v1/...).

import { ApiError, call } from "./api.js";
import { h, replace, uid } from "./dom.js";
import { ago, credits, dateTime } from "./format.js";

function describe(error) {
  return error instanceof ApiError ? error.describe() : String(error);
}

export function adminPage(page, context) {
  if (page === "accounts") return accountsPage(context);
  if (page === "keys") return keysPage(context);
  if (page === "workers") return workersPage(context);
  if (page === "audit") return auditPage(context);
  return h("section", {}, h("h1", {}, "Page not found"), h("p", {}, context.link("admin/accounts", "Accounts")));
}

/** A labelled control in a form: the label names it (its accessible name), the error line sits beneath. */
function field(label, control, hint) {
  const id = control.id || uid("field");
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hintId = uid("hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("p", { id: hintId, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

function table(headings, rows, empty) {
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headings.length }, empty))),
    ),
  );
}

async function loadAccounts(context) {
  return (await call("GET", "/admin/v1/accounts", { signal: context.signal })).data;
}

// --- accounts --------------------------------------------------------------------------------------------

function accountsPage(context) {
  const list = h("div", {}, h("p", { class: "hint" }, "Loading…"));
  const ledger = h("div", { class: "ledger" });
  const problem = h("p", { class: "field-error", role: "alert" });

  const grantAccount = h("select", { required: true });
  const grantCredits = h("input", { type: "number", min: "0.001", step: "any", required: true, inputmode: "decimal" });
  const grantNote = h("input", { type: "text", maxlength: 500 });
  const grantError = h("p", { class: "field-error", role: "alert" });
  const grantDone = h("p", { class: "done", role: "status" });
  const grantForm = h(
    "form",
    { class: "card", novalidate: true },
    h("h2", {}, "Grant credits"),
    field("Account", grantAccount),
    field("Credits to grant", grantCredits),
    field("Note", grantNote, "Kept with the ledger entry, e.g. an invoice number."),
    h("button", { type: "submit" }, "Grant credits"),
    grantError,
    grantDone,
  );
  grantForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    grantError.textContent = "";
    grantDone.textContent = "";
    const amount = Number(grantCredits.value);
    if (!grantAccount.value || !(amount > 0)) {
      grantError.textContent = "Choose an account and a positive number of credits.";
      return;
    }
    try {
      const body = { credits: amount };
      if (grantNote.value.trim()) body.note = grantNote.value.trim();
      const account = await call("POST", `/admin/v1/accounts/${encodeURIComponent(grantAccount.value)}/grants`, { body, signal: context.signal });
      grantDone.textContent = `Granted ${credits(amount)} credits to ${account.name}: balance ${credits(account.balance)}, available ${credits(account.available)}.`;
      grantCredits.value = "";
      grantNote.value = "";
      refresh();
      showLedger(account.id);
    } catch (error) {
      if (error.name !== "AbortError" && !context.signedOutBy(error)) grantError.textContent = describe(error);
    }
  });

  const newName = h("input", { type: "text", required: true, maxlength: 200 });
  const newGroup = h("input", { type: "text", value: "default", maxlength: 64, pattern: "[A-Za-z0-9_.\\-]{1,64}" });
  const newCredits = h("input", { type: "number", min: "0", step: "any", value: "0", inputmode: "decimal" });
  const newError = h("p", { class: "field-error", role: "alert" });
  const newForm = h(
    "form",
    { class: "card", novalidate: true },
    h("h2", {}, "Create an account"),
    field("Account name", newName),
    field("User group", newGroup, "The group of the pricing file whose multiplier and limits apply."),
    field("Initial credits", newCredits),
    h("button", { type: "submit" }, "Create account"),
    newError,
  );
  newForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    newError.textContent = "";
    try {
      await call("POST", "/admin/v1/accounts", {
        body: { name: newName.value.trim(), user_group: newGroup.value.trim() || "default", credits: Number(newCredits.value || 0) },
        signal: context.signal,
      });
      newName.value = "";
      newCredits.value = "0";
      refresh();
    } catch (error) {
      if (error.name !== "AbortError" && !context.signedOutBy(error)) newError.textContent = describe(error);
    }
  });

  async function showLedger(accountId) {
    try {
      const page = await call("GET", `/admin/v1/accounts/${encodeURIComponent(accountId)}/ledger?limit=50`, { signal: context.signal });
      replace(
        ledger,
        h("h2", {}, "Ledger of ", page.account.name),
        table(
          ["Entry", "Kind", "Credits", "Task", "Note", "When"],
          page.data.map((entry) =>
            h("tr", {}, h("td", {}, entry.id), h("td", {}, entry.kind), h("td", {}, credits(entry.credits)), h("td", {}, entry.task_id || ""), h("td", {}, entry.note || ""), h("td", {}, dateTime(entry.created))),
          ),
          "No entries yet.",
        ),
      );
    } catch (error) {
      if (error.name !== "AbortError" && !context.signedOutBy(error)) replace(ledger, h("p", { class: "field-error" }, describe(error)));
    }
  }

  async function refresh() {
    try {
      const accounts = await loadAccounts(context);
      const chosen = grantAccount.value;
      replace(grantAccount, accounts.map((a) => h("option", { value: a.id, selected: a.id === chosen }, `${a.name} (${a.id})`)));
      replace(
        list,
        table(
          ["Name", "Id", "Group", "Balance", "Held", "Available", "Keys", ""],
          accounts.map((a) => {
            const show = h("button", { type: "button", class: "quiet", "aria-label": `Ledger of ${a.name}` }, "Ledger");
            show.addEventListener("click", () => showLedger(a.id));
            return h(
              "tr",
              { dataset: { accountId: a.id } },
              h("td", {}, a.name),
              h("td", {}, h("code", {}, a.id)),
              h("td", {}, a.user_group),
              h("td", { class: "balance" }, credits(a.balance)),
              h("td", {}, credits(a.held)),
              h("td", {}, credits(a.available)),
              h("td", {}, a.keys.length),
              h("td", {}, show),
            );
          }),
          "No accounts yet.",
        ),
      );
    } catch (error) {
      if (error.name !== "AbortError" && !context.signedOutBy(error)) problem.textContent = describe(error);
    }
  }

  refresh();
  return h("section", {}, h("h1", {}, "Accounts"), problem, list, h("div", { class: "columns" }, grantForm, newForm), ledger);
}

// --- keys ----------------------------------------------------------------------------------------------

function keysPage(context) {
  const list = h("div", {}, h("p", { class: "hint" }, "Loading…"));
  const problem = h("p", { class: "field-error", role: "alert" });
  const shown = h("div", { class: "shown-once", role: "status" });

  const name = h("input", { type: "text", required: true, maxlength: 200 });
  const account = h("select", {});
  const group = h("input", { type: "text", value: "default", maxlength: 64 });
  const startCredits = h("input", { type: "number", min: "0", step: "any", value: "0", inputmode: "decimal" });
  const models = h("input", { type: "text", placeholder: "kling-o1-image-to-video" });
  const rpm = h("input", { type: "number", min: "1", step: "1", inputmode: "numeric" });
  const readRpm = h("input", { type: "number", min: "1", step: "1", inputmode: "numeric" });
  const concurrent = h("input", { type: "number", min: "1", step: "1", inputmode: "numeric" });
  const expires = h("input", { type: "date" });
  const error = h("p", { class: "field-error", role: "alert" });
  const form = h(
    "form",
    { class: "card", novalidate: true },
    h("h2", {}, "Create a key"),
    field("Key name", name),
    field("Account", account, "A new account is named after the key."),
    field("User group of a new account", group),
    field("Credits", startCredits, "Granted to the key's account."),
    field("Allowed models", models, "Comma-separated; empty = every model."),
    h(
      "div",
      { class: "choices" },
      field("Writes per minute", rpm),
      field("Reads per minute", readRpm),
      field("Unfinished tasks at once", concurrent),
    ),
    field("Expires on", expires, "Empty = never. The key stops working at the start of that day (UTC)."),
    h("button", { type: "submit" }, "Create key"),
    error,
  );

  function optionalInt(input) {
    return input.value.trim() === "" ? undefined : Number(input.value);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    replace(shown);
    const body = { name: name.value.trim(), credits: Number(startCredits.value || 0) };
    if (account.value) body.account_id = account.value;
    else body.user_group = group.value.trim() || "default";
    const allowed = models.value.split(",").map((m) => m.trim()).filter(Boolean);
    if (allowed.length) body.allowed_models = allowed;
    for (const [key, input] of [["rpm", rpm], ["read_rpm", readRpm], ["max_concurrent", concurrent]]) {
      const value = optionalInt(input);
      if (value !== undefined) body[key] = value;
    }
    if (expires.value) body.expires_at = Math.floor(Date.parse(`${expires.value}T00:00:00Z`) / 1000);
    try {
      const created = await call("POST", "/admin/v1/keys", { body, signal: context.signal });
      replace(
        shown,
        h("h2", {}, "Key created: copy it now"),
        h("p", {}, "It is shown this once; the server keeps only a hash of it."),
        secretField("The new API key", created.key, "Copy the key"),
        secretField("Its webhook secret", created.webhook_secret, "Copy the secret"),
        h("p", { class: "hint" }, `Key ${created.info.name} (${created.info.id}) on account ${created.info.account_id}.`),
      );
      name.value = "";
      refresh();
    } catch (failure) {
      if (failure.name !== "AbortError" && !context.signedOutBy(failure)) error.textContent = describe(failure);
    }
  });

  function secretField(label, value, copyName) {
    const input = h("input", { type: "text", readonly: true, value, class: "secret", spellcheck: "false" });
    const copy = h("button", { type: "button", class: "quiet" }, copyName);
    copy.addEventListener("click", async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(value);
        copy.textContent = "Copied";
      } catch {
        copy.textContent = "Select and copy it by hand";
      }
    });
    return h("div", { class: "field" }, h("label", { for: (input.id = uid("secret")) }, label), h("div", { class: "row" }, input, copy));
  }

  async function refresh() {
    try {
      const accounts = await loadAccounts(context);
      const chosen = account.value;
      replace(account, h("option", { value: "" }, "A new account"), accounts.map((a) => h("option", { value: a.id, selected: a.id === chosen }, `${a.name} (${a.id})`)));
      const rows = accounts.flatMap((a) =>
        a.keys.map((key) => {
          const cells = [
            h("td", {}, key.name),
            h("td", {}, h("code", {}, key.id)),
            h("td", {}, a.name),
            h("td", {}, key.status),
            h("td", {}, [key.limits.rpm ? `${key.limits.rpm}/min` : "default", key.limits.read_rpm ? `, reads ${key.limits.read_rpm}/min` : "", key.limits.max_concurrent ? `, ${key.limits.max_concurrent} at once` : ""].join("")),
            h("td", {}, key.allowed_models ? key.allowed_models.join(", ") : "all"),
            h("td", {}, key.expires_at ? dateTime(key.expires_at) : "never"),
          ];
          const actions = h("td", {});
          if (key.status === "active") {
            const revoke = h("button", { type: "button", class: "danger", "aria-label": `Revoke ${key.name}` }, "Revoke");
            revoke.addEventListener("click", async () => {
              revoke.disabled = true;
              try {
                await call("POST", `/admin/v1/keys/${encodeURIComponent(key.id)}/revoke`, { signal: context.signal });
                refresh();
              } catch (failure) {
                revoke.disabled = false;
                if (failure.name !== "AbortError" && !context.signedOutBy(failure)) problem.textContent = describe(failure);
              }
            });
            actions.append(revoke);
          }
          return h("tr", { dataset: { keyId: key.id } }, cells, actions);
        }),
      );
      replace(list, h("h2", {}, "All keys"), table(["Name", "Id", "Account", "Status", "Limits", "Models", "Expires", ""], rows, "No keys yet."));
    } catch (failure) {
      if (failure.name !== "AbortError" && !context.signedOutBy(failure)) problem.textContent = describe(failure);
    }
  }

  refresh();
  return h("section", {}, h("h1", {}, "Keys"), shown, form, problem, list);
}

// --- workers and audit -------------------------------------------------------------------------------------

function workersPage(context) {
  const box = h("div", {}, h("p", { class: "hint" }, "Loading…"));
  call("GET", "/admin/v1/workers", { signal: context.signal })
    .then((workers) => {
      const live = Object.entries(workers.live_by_engine).map(([engine, count]) => `${engine}: ${count}`).join(" · ");
      replace(
        box,
        h("p", {}, `Live workers per engine: ${live || "none"}`),
        table(
          ["Host", "Worker", "Kind", "Engines", "Running", "Last seen", "Live"],
          workers.data.map((w) =>
            h(
              "tr",
              {},
              h("td", {}, w.host),
              h("td", {}, h("code", {}, w.id)),
              h("td", {}, w.kind),
              h("td", {}, Object.entries(w.engines).map(([engine, state]) => (state.available ? engine : `${engine} (out: ${state.reason})`)).join(", ")),
              h("td", {}, `${w.running} of ${w.concurrency}`),
              h("td", {}, ago(w.last_seen)),
              h("td", {}, w.live ? "yes" : "no"),
            ),
          ),
          "No workers have registered.",
        ),
      );
    })
    .catch((error) => {
      if (error.name !== "AbortError" && !context.signedOutBy(error)) replace(box, h("p", { class: "field-error", role: "alert" }, describe(error)));
    });
  return h("section", {}, h("h1", {}, "Workers"), box);
}

function auditPage(context) {
  const box = h("div", { role: "status" }, h("p", { class: "hint" }, "Auditing…"));
  const again = h("button", { type: "button" }, "Run the audit again");
  async function run() {
    again.disabled = true;
    try {
      const audit = await call("GET", "/admin/v1/audit", { signal: context.signal });
      replace(
        box,
        h("p", { class: audit.ok ? "done" : "field-error" }, audit.ok ? "The ledger is consistent." : `${audit.problems.length} problem(s) found.`),
        h("dl", { class: "facts" }, [
          [h("dt", {}, "Accounts"), h("dd", {}, audit.accounts)],
          [h("dt", {}, "Ledger entries"), h("dd", {}, audit.entries)],
          [h("dt", {}, "Tasks checked"), h("dd", {}, audit.tasks_checked)],
        ]),
        audit.problems.length ? h("ul", {}, audit.problems.map((p) => h("li", {}, p))) : null,
      );
    } catch (error) {
      if (error.name !== "AbortError" && !context.signedOutBy(error)) replace(box, h("p", { class: "field-error" }, describe(error)));
    } finally {
      again.disabled = false;
    }
  }
  again.addEventListener("click", run);
  run();
  return h("section", {}, h("h1", {}, "Credits audit"), h("p", { class: "hint" }, "Every balance and hold is the sum of its ledger entries, and every ended task was settled once."), box, again);
}
