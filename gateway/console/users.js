// The admin's user list: GET /v1/users, filtered by status, paged, searchable by email.
//
// The API pages by token (next_page_token), so "Previous" walks back a stack
// of the tokens seen. Search by email uses the API's own filter when the
// served OpenAPI document lists an `email` parameter for GET /v1/users;
// otherwise the console scans the list page by page (1000 users a page, at
// most SEARCH_MAX_PAGES pages) and says how many users it searched.

import * as api from "./api.js";
import { h, replace } from "./dom.js";
import { renderLive } from "./live.js";
import { clearMessages, complain } from "./notices.js";
import { shortTime, text, valueNode } from "./format.js";

const SEARCH_PAGE_SIZE = 1000;
const SEARCH_MAX_PAGES = 20;

export function renderUsers(main) {
  const state = { tokens: [""], page: 0, pageSize: 25, status: "", query: "" };
  const controller = new AbortController();

  const search = h("input", { id: "user-search", type: "search", name: "email", autocomplete: "off" });
  const status = h(
    "select",
    { id: "user-status", name: "status" },
    h("option", { value: "" }, "any"),
    h("option", { value: "active" }, "active"),
    h("option", { value: "deactivated" }, "deactivated"),
  );
  const pageSize = h(
    "select",
    { id: "user-page-size", name: "page_size" },
    [10, 25, 50, 100].map((n) => h("option", { value: n, selected: n === state.pageSize }, n)),
  );
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Find users" },
    h("div", { class: "field" }, h("label", { for: "user-search" }, "Email contains"), search),
    h("div", { class: "field" }, h("label", { for: "user-status" }, "Status"), status),
    h("div", { class: "field" }, h("label", { for: "user-page-size" }, "Per page"), pageSize),
    h("button", { type: "submit", id: "user-apply" }, "Apply"),
  );
  const summary = h("p", { id: "users-summary", class: "muted", "aria-live": "polite" });
  const table = h("div", { class: "table-wrap", tabindex: "0", "aria-labelledby": "users-title" });
  const prev = h("button", { type: "button", id: "users-prev", disabled: true }, "Previous page");
  const next = h("button", { type: "button", id: "users-next", disabled: true }, "Next page");
  const live = h("section", { class: "card", "aria-labelledby": "live-title" });

  replace(
    main,
    h("h1", { id: "users-title" }, "Users"),
    h("section", { class: "card" }, form, summary, table, h("div", { class: "pager" }, prev, next)),
    live,
  );

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.query = search.value.trim().toLowerCase();
    state.status = status.value;
    state.pageSize = Number(pageSize.value);
    state.tokens = [""];
    state.page = 0;
    load();
  });
  status.addEventListener("change", () => form.requestSubmit());
  pageSize.addEventListener("change", () => form.requestSubmit());
  prev.addEventListener("click", () => {
    state.page -= 1;
    load();
  });
  next.addEventListener("click", () => {
    state.page += 1;
    load();
  });

  let ticket = 0; // the newest load; an older answer arriving later is dropped

  async function load() {
    const mine = ++ticket;
    clearMessages();
    summary.textContent = "Loading…";
    try {
      const serverSearch = await api.acceptsParameter("GET", "/users", "email");
      if (state.query && !serverSearch) {
        await scan(mine);
        return;
      }
      const reply = await api.listUsers({
        status: state.status,
        pageSize: state.pageSize,
        pageToken: state.tokens[state.page],
        email: state.query || undefined,
      });
      if (mine !== ticket) return;
      state.tokens[state.page + 1] = reply.next_page_token || null;
      showTable(reply.users ?? []);
      const count = reply.count ?? 0;
      summary.textContent = `Page ${state.page + 1}: ${count} user${count === 1 ? "" : "s"}${
        state.status ? ` (${state.status})` : ""
      }${state.query ? `, email contains “${state.query}”` : ""}.`;
      prev.disabled = state.page === 0;
      next.disabled = !state.tokens[state.page + 1];
    } catch (error) {
      if (mine !== ticket) return;
      summary.textContent = "";
      complain(error);
    }
  }

  async function scan(mine) {
    const found = [];
    let token = "";
    let pages = 0;
    let searched = 0;
    do {
      const reply = await api.listUsers({
        status: state.status,
        pageSize: SEARCH_PAGE_SIZE,
        pageToken: token,
      });
      pages += 1;
      searched += reply.users?.length ?? 0;
      found.push(...(reply.users ?? []).filter((u) => u.email.includes(state.query)));
      token = reply.next_page_token;
    } while (token && pages < SEARCH_MAX_PAGES && mine === ticket && !controller.signal.aborted);
    if (mine !== ticket) return;
    showTable(found);
    summary.textContent =
      `${found.length} user${found.length === 1 ? "" : "s"} whose email contains “${state.query}”` +
      ` (searched ${searched} users${token ? `, the first ${pages} pages only` : ""}).`;
    prev.disabled = true;
    next.disabled = true;
  }

  function showTable(users) {
    if (users.length === 0) {
      replace(table, h("p", { class: "muted" }, "No users."));
      return;
    }
    replace(
      table,
      h(
        "table",
        { id: "users-table" },
        h("caption", { class: "sr-only" }, "Users"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Email", "Status", "Role", "Version", "Registered", "Last login", "Logins"].map((t) =>
              h("th", { scope: "col" }, t),
            ),
          ),
        ),
        h(
          "tbody",
          {},
          users.map((user) =>
            h(
              "tr",
              { dataset: { userId: user.id } },
              h(
                "th",
                { scope: "row" },
                h("a", { href: `#/users/${encodeURIComponent(user.id)}` }, valueNode(user.email)),
              ),
              h("td", { class: `status status-${user.status}` }, text(user.status)),
              h("td", {}, text(user.role)),
              h("td", {}, text(user.version)),
              h("td", { title: user.created_at ?? "" }, shortTime(user.created_at)),
              h("td", { title: user.last_login_at ?? "" }, shortTime(user.last_login_at)),
              h("td", {}, text(user.login_count)),
            ),
          ),
        ),
      ),
    );
  }

  const liveFeed = renderLive(live, { userId: null, onEvent: null });
  load();
  return () => {
    controller.abort();
    liveFeed.stop();
  };
}
