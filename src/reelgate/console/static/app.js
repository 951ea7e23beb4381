// The console's shell: sign in, the navigation, and the page for the address (the History API: every page
// has a real URL under /console, which the server answers with this same shell).

import { ApiError, ROOT, call, session } from "./api.js";
import { h, replace, uid } from "./dom.js";
import { accountPage } from "./account.js";
import { adminPage } from "./admin.js";
import { createPage } from "./create.js";
import { taskPage, tasksPage } from "./tasks.js";

const BASE = `${ROOT}/console`;
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const signOut = document.getElementById("sign-out");

const USER_PAGES = [
  ["create", "Create"],
  ["tasks", "Tasks"],
  ["account", "Account"],
];
const ADMIN_PAGES = [
  ["admin/accounts", "Accounts"],
  ["admin/keys", "Keys"],
  ["admin/workers", "Workers"],
  ["admin/audit", "Audit"],
];

let current = null; // the AbortController of the page on screen: its streams stop when another page shows

export function href(route) {
  return route ? `${BASE}/${route}` : BASE;
}

export function go(route, { replaceState = false } = {}) {
  const url = href(route);
  if (replaceState) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

/** A link inside the console: followed without reloading the page. */
export function link(route, ...children) {
  return h("a", { href: href(route), "data-link": true }, ...children);
}

function routeOf() {
  const path = location.pathname;
  if (!path.startsWith(BASE)) return "";
  return decodeURIComponent(path.slice(BASE.length).replace(/^\/+|\/+$/g, ""));
}

/** A refused key (revoked, expired) ends the session: back to sign in, saying why. */
export function signedOutBy(error) {
  if (error instanceof ApiError && error.status === 401) {
    session.clear();
    render(`Signed out: ${error.message}`);
    return true;
  }
  return false;
}

function renderNav(state, route) {
  const pages = state === null ? [] : state.mode === "admin" ? ADMIN_PAGES : USER_PAGES;
  replace(
    nav,
    h(
      "ul",
      {},
      pages.map(([page, label]) => {
        const here = route === page || route.startsWith(`${page}/`);
        return h("li", {}, h("a", { href: href(page), "data-link": true, "aria-current": here ? "page" : null }, label));
      }),
    ),
  );
  signOut.hidden = state === null;
  who.textContent = state === null ? "" : state.mode === "admin" ? "Admin" : state.label || "";
}

function render(message) {
  current?.abort();
  current = new AbortController();
  const state = session.get();
  let route = routeOf();
  if (state === null && route !== "") {
    history.replaceState(null, "", BASE);
    route = "";
  }
  if (state !== null && route === "") {
    route = state.mode === "admin" ? "admin/accounts" : "create";
    history.replaceState(null, "", href(route));
  }
  renderNav(state, route);
  const context = { signal: current.signal, main, go, link, signedOutBy };
  let page;
  if (state === null) page = signInPage(message);
  else if (state.mode === "admin") page = route.startsWith("admin/") ? adminPage(route.slice(6), context) : notFound();
  else if (route === "create") page = createPage(context);
  else if (route === "tasks") page = tasksPage(context);
  else if (route.startsWith("tasks/")) page = taskPage(route.slice(6), context);
  else if (route === "account") page = accountPage(context);
  else page = notFound();
  replace(main, page);
  const heading = main.querySelector("h1");
  document.title = heading ? `${heading.textContent} · reelgate` : "reelgate console";
}

function notFound() {
  return h("section", {}, h("h1", {}, "Page not found"), h("p", {}, "This console has no such page. ", link("", "Start again")));
}

function signInPage(message) {
  const keyId = uid("key");
  const hintId = uid("hint");
  const errorId = uid("error");
  const input = h("input", {
    id: keyId,
    name: "key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": `${hintId} ${errorId}`,
  });
  const error = h("p", { id: errorId, class: "field-error", role: "alert" }, message || "");
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card narrow", novalidate: true },
    h("h1", {}, "Sign in"),
    h("div", { class: "field" }, h("label", { for: keyId }, "API key"), input),
    h(
      "p",
      { id: hintId, class: "hint" },
      "An API key (rg_...) opens your tasks and account; the operator's admin token (REELGATE_ADMIN_TOKEN) opens the admin views. ",
      "It is kept in this tab only (sessionStorage) and sent in the Authorization header, never in a URL.",
    ),
    error,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      error.textContent = "Enter an API key or the admin token.";
      input.focus();
      return;
    }
    button.disabled = true;
    error.textContent = "";
    try {
      session.set(await signIn(token));
      render();
    } catch (failure) {
      error.textContent = failure instanceof ApiError ? failure.describe() : String(failure);
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  queueMicrotask(() => input.focus());
  return form;
}

async function signIn(token) {
  if (token.startsWith("rg_")) {
    const account = await call("GET", "/v1/account", { token });
    return { mode: "user", token, label: `${account.key.name} · ${account.name}` };
  }
  try {
    await call("GET", "/admin/v1/accounts", { token });
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 404) {
      throw new ApiError(404, "not_found_error", "This server has no admin API (REELGATE_ADMIN_TOKEN is not set); sign in with an API key");
    }
    throw failure;
  }
  return { mode: "admin", token };
}

document.addEventListener("click", (event) => {
  const anchor = event.target instanceof Element ? event.target.closest("a[data-link]") : null;
  if (!anchor || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  history.pushState(null, "", anchor.getAttribute("href"));
  render();
  main.focus({ preventScroll: true });
});

signOut.addEventListener("click", () => {
  session.clear();
  history.pushState(null, "", BASE);
  render("Signed out.");
});

window.addEventListener("popstate", () => render());
render();
