// Account: the key's account (balance, held, available), its limits and models, and its use per day.

import { ApiError, call } from "./api.js";
import { usageChart } from "./chart.js";
import { h, replace } from "./dom.js";
import { credits, dateTime } from "./format.js";

export function accountPage(context) {
  const section = h("section", {}, h("h1", {}, "Account"), h("p", { class: "hint" }, "Loading…"));
  const usageBox = h("div", {}, h("h2", {}, "Usage, last 30 days"), h("p", { class: "hint" }, "Loading…"));

  function fact(name, value) {
    return [h("dt", {}, name), h("dd", {}, value === null || value === undefined ? "—" : String(value))];
  }

  Promise.all([call("GET", "/v1/account", { signal: context.signal }), call("GET", "/v1/account/usage?days=30", { signal: context.signal })])
    .then(([account, usage]) => {
      const key = account.key;
      const limits = key.limits;
      replace(
        section,
        h("h1", {}, "Account"),
        h(
          "div",
          { class: "money" },
          h("div", { class: "stat" }, h("span", { class: "label" }, "Balance"), h("span", { class: "value" }, credits(account.balance))),
          h("div", { class: "stat" }, h("span", { class: "label" }, "Held"), h("span", { class: "value" }, credits(account.held))),
          h("div", { class: "stat" }, h("span", { class: "label" }, "Available"), h("span", { class: "value" }, credits(account.available))),
        ),
        h(
          "div",
          { class: "columns" },
          h(
            "div",
            {},
            h("h2", {}, "Account"),
            h("dl", { class: "facts" }, fact("Name", account.name), fact("Id", account.id), fact("User group", account.user_group), fact("Price multiplier", account.price_multiplier)),
          ),
          h(
            "div",
            {},
            h("h2", {}, "This key"),
            h(
              "dl",
              { class: "facts" },
              fact("Name", key.name),
              fact("Id", key.id),
              fact("Status", key.status),
              fact("Expires", key.expires_at ? dateTime(key.expires_at) : "never"),
              fact("Writes per minute", limits.rpm),
              fact("Reads per minute", limits.read_rpm),
              fact("Unfinished tasks at once", limits.max_concurrent ? limits.max_concurrent : "no limit"),
              fact("Models", (key.allowed_models || []).join(", ")),
            ),
          ),
        ),
        usageBox,
      );
      replace(usageBox, h("h2", {}, "Usage, last 30 days"), usageChart(usage));
    })
    .catch((error) => {
      if (error.name === "AbortError" || context.signedOutBy(error)) return;
      replace(section, h("h1", {}, "Account"), h("p", { class: "field-error", role: "alert" }, error instanceof ApiError ? error.describe() : String(error)));
    });
  return section;
}
