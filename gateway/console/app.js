// The console's shell: who is signed in, navigation, notices, and routing.
//
// Routes live in the URL's fragment (#/users, #/users/<id>), so the gateway
// serves one page and a reload or a shared link opens the same view. Each
// view is a function (main, params) returning an optional cleanup, called
// before the next view renders (it stops live streams and timers).

import * as api from "./api.js";
import { h, replace } from "./dom.js";
import { renderLogin } from "./login.js";
import { clearMessages, say } from "./notices.js";
import { renderUser } from "./user.js";
import { renderUsers } from "./users.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");

let cleanup = null;

function go(hash) {
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

function homeOf(session) {
  return api.isAdmin() ? "#/users" : `#/users/${encodeURIComponent(session.user.id)}`;
}

function renderChrome(session) {
  if (!session) {
    replace(nav);
    replace(who);
    return;
  }
  replace(
    nav,
    h(
      "ul",
      {},
      api.isAdmin() ? h("li", {}, h("a", { href: "#/users" }, "Users")) : null,
      h("li", {}, h("a", { href: `#/users/${encodeURIComponent(session.user.id)}` }, "My account")),
    ),
  );
  replace(
    who,
    h(
      "span",
      { id: "signed-in-as" },
      "Signed in as ",
      h("strong", {}, session.user.email),
      ` (${session.user.role})`,
    ),
    " ",
    h("button", { type: "button", id: "sign-out", onclick: signOut }, "Sign out"),
  );
}

async function signOut() {
  await api.logout();
  say("Signed out.");
}

function route() {
  const hash = window.location.hash.replace(/^#/, "") || "/";
  const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
  return parts;
}

function render() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const session = api.currentSession();
  renderChrome(session);
  if (!session) {
    cleanup = renderLogin(main);
    return;
  }
  const parts = route();
  if (parts[0] === "users" && parts.length === 2) {
    cleanup = renderUser(main, parts[1]);
  } else if (parts[0] === "users" && parts.length === 1 && api.isAdmin()) {
    cleanup = renderUsers(main);
  } else {
    go(homeOf(session));
    return;
  }
  document.title = `${main.querySelector("h1")?.textContent ?? "console"} · cqrs-users`;
}

window.addEventListener("hashchange", () => {
  clearMessages();
  render();
  main.focus({ preventScroll: true });
});
// Only signing in or out changes the view: a refreshed token keeps the page as it is.
let shownUser = api.currentSession()?.user?.id ?? null;
api.onSessionChange((session) => {
  const user = session?.user?.id ?? null;
  if (user === shownUser) return;
  shownUser = user;
  render();
});
render();
