// A user's page: the timeline of every event, the state at any point, compare,
// snapshots, live events and (for admins) the actions the API allows.
//
// The timeline comes from GET /v1/replay/user/{id}/history (every event with
// the fields it changed). Selecting a point asks the API for the state there
// (GET .../state-at?version=N, or ?timestamp= from "Go to a time"), so what is
// shown is what the API reconstructs, with the number of events it replayed;
// the fields the selected event changed are highlighted. The page computes
// no state itself: folding events is the domain's job, not the browser's.

import * as api from "./api.js";
import { h, replace, srOnly } from "./dom.js";
import { eventLabel, payloadNode, shortTime, stateFields, text, valueNode } from "./format.js";
import { renderLive } from "./live.js";
import { clearMessages, complain, say } from "./notices.js";
import { renderActions } from "./actions.js";

const SCRUB_DEBOUNCE_MS = 120;

export function renderUser(main, userId) {
  const controller = new AbortController();
  const page = {
    entries: [],
    selected: -1,
    snapshotVersions: new Set(),
    newVersions: new Set(),
    stateRequest: 0,
    historyRequest: 0,
  };

  const title = h("h1", { id: "user-title" }, "User");
  const summary = h("div", { id: "user-summary", class: "card summary" }, h("p", {}, "Loading…"));
  const scrub = h("input", {
    id: "scrub",
    type: "range",
    min: 1,
    max: 1,
    value: 1,
    step: 1,
    disabled: true,
  });
  const scrubLabel = h("label", { for: "scrub", id: "scrub-label" }, "Point in time");
  const timeline = h("ol", { id: "timeline", class: "timeline", "aria-labelledby": "timeline-title" });
  const timelineCount = h("span", { id: "timeline-count", class: "muted" });
  const jumpTime = h("input", {
    id: "jump-time",
    name: "timestamp",
    type: "text",
    inputmode: "text",
    placeholder: "2026-01-02T03:04:05Z",
    autocomplete: "off",
  });
  const jumpForm = h(
    "form",
    { class: "inline-form", "aria-label": "Go to a time" },
    h("label", { for: "jump-time" }, "Go to a time (RFC 3339)"),
    jumpTime,
    h("button", { type: "submit", id: "jump-go" }, "Show state"),
  );
  const eventDetail = h("div", { id: "event-detail" });
  const stateTitle = h("h2", { id: "state-title" }, "State");
  const stateInfo = h("p", { id: "state-replayed", class: "muted" });
  const stateTable = h("div", { class: "table-wrap", tabindex: "0", "aria-labelledby": "state-title" });
  const compareA = h("select", { id: "compare-a" });
  const compareB = h("select", { id: "compare-b" });
  const compareResult = h("div", { id: "compare-result", "aria-live": "polite" });
  const snapshots = h("section", { class: "card", "aria-labelledby": "snapshots-title" });
  const actions = h("section", { class: "card", "aria-labelledby": "actions-title" });
  const live = h("section", { class: "card", "aria-labelledby": "live-title" });

  replace(
    main,
    title,
    summary,
    h(
      "div",
      { class: "grid" },
      h(
        "div",
        { class: "stack" },
        h(
        "section",
        { class: "card timeline-card", "aria-labelledby": "timeline-title" },
        h("h2", { id: "timeline-title" }, "Timeline ", timelineCount),
        h(
          "p",
          { class: "muted", id: "timeline-help" },
          "Move the slider or the focus in the list (arrow keys, Home, End) to see the state at that point.",
        ),
        h("div", { class: "field" }, scrubLabel, scrub),
        timeline,
        jumpForm,
        ),
        live,
      ),
      h(
        "div",
        { class: "stack" },
        h(
          "section",
          { class: "card", "aria-labelledby": "event-title" },
          h("h2", { id: "event-title" }, "Event"),
          eventDetail,
        ),
        h(
          "section",
          { class: "card", "aria-labelledby": "state-title", "aria-live": "polite" },
          stateTitle,
          stateInfo,
          stateTable,
        ),
        h(
          "section",
          { class: "card", "aria-labelledby": "compare-title" },
          h("h2", { id: "compare-title" }, "Compare two points"),
          h(
            "form",
            { class: "inline-form", id: "compare-form" },
            h("div", { class: "field" }, h("label", { for: "compare-a" }, "From"), compareA),
            h("div", { class: "field" }, h("label", { for: "compare-b" }, "To"), compareB),
            h("button", { type: "submit", id: "compare-run" }, "Compare"),
          ),
          compareResult,
        ),
        snapshots,
        actions,
      ),
    ),
  );

  scrub.setAttribute("aria-describedby", "timeline-help");

  // ------------------------------------------------------ loading ---

  /** The read model's row, once it has applied this user's newest event (minPosition). */
  async function loadSummary(minPosition) {
    try {
      const { user } = await api
        .getUser(userId, minPosition || undefined)
        .catch((error) => {
          // The read model is behind or stalled: show what it has, and say so below.
          if (error instanceof api.ApiError && [503, 504].includes(error.status) && minPosition) {
            complain(`The read model has not reached position ${minPosition} yet: ${describe(error)}`);
            return api.getUser(userId);
          }
          throw error;
        });
      title.replaceChildren("User ", valueNode(user.email));
      replace(
        summary,
        h(
          "dl",
          { class: "stats" },
          h("dt", {}, "Id"),
          h("dd", { id: "user-id" }, user.id),
          h("dt", {}, "Email"),
          h("dd", { id: "user-email" }, valueNode(user.email)),
          h("dt", {}, "Status"),
          h("dd", { id: "user-status", class: `status status-${user.status}` }, text(user.status)),
          h("dt", {}, "Role"),
          h("dd", {}, text(user.role)),
          h("dt", {}, "Version (read model)"),
          h("dd", { id: "user-version" }, text(user.version)),
          h("dt", {}, "Logins"),
          h("dd", {}, text(user.login_count)),
        ),
      );
    } catch (error) {
      replace(summary, h("p", { class: "error" }, `The read model's user: ${describe(error)}`));
    }
    document.title = `${title.textContent} · cqrs-users`;
  }

  async function loadHistory({ follow = false } = {}) {
    const ticket = ++page.historyRequest;
    const reply = await api.history(userId);
    if (ticket !== page.historyRequest) return; // a newer refresh is under way
    const wasLast = page.selected === page.entries.length - 1;
    const known = page.entries.length;
    page.entries = reply.entries ?? [];
    if (known) {
      for (const entry of page.entries.slice(known)) page.newVersions.add(entry.event.version);
    }
    renderTimeline();
    renderCompareChoices();
    const last = page.entries.length - 1;
    if (last < 0) {
      replace(eventDetail, h("p", { class: "muted" }, "This user has no events."));
      return;
    }
    const target = page.selected < 0 || (wasLast && follow) ? last : Math.min(page.selected, last);
    select(target, { force: true });
  }

  async function refresh(options) {
    try {
      await Promise.all([loadHistory(options), loadSnapshots()]);
      await loadSummary(page.entries.at(-1)?.event.position);
    } catch (error) {
      complain(error);
    }
  }

  // ----------------------------------------------------- timeline ---

  function renderTimeline() {
    const count = page.entries.length;
    timelineCount.textContent = `(${count} event${count === 1 ? "" : "s"})`;
    scrub.max = String(Math.max(count, 1));
    scrub.disabled = count === 0;
    replace(
      timeline,
      page.entries.map((entry, index) => {
        const event = entry.event;
        const marks = [
          page.snapshotVersions.has(event.version)
            ? h("span", { class: "badge badge-snapshot" }, "snapshot")
            : null,
          page.newVersions.has(event.version) ? h("span", { class: "badge badge-new" }, "new") : null,
        ];
        return h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: "tl-item",
              tabindex: "-1",
              "aria-current": "false",
              dataset: { version: event.version, position: event.position, index },
              onclick: () => select(index),
              onkeydown: (keyEvent) => moveWithKeys(keyEvent, index),
            },
            h("span", { class: "tl-version" }, `v${event.version}`),
            h("span", { class: "tl-type" }, event.event_type),
            h("time", { class: "tl-time", datetime: event.timestamp }, shortTime(event.timestamp)),
            h("span", { class: "tl-pos" }, `#${event.position}`),
            marks,
          ),
        );
      }),
    );
  }

  function buttons() {
    return [...timeline.querySelectorAll("button.tl-item")];
  }

  function moveWithKeys(keyEvent, index) {
    const moves = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 };
    let target = null;
    if (keyEvent.key in moves) target = index + moves[keyEvent.key];
    else if (keyEvent.key === "Home") target = 0;
    else if (keyEvent.key === "End") target = page.entries.length - 1;
    else if (keyEvent.key === "PageDown") target = index + 10;
    else if (keyEvent.key === "PageUp") target = index - 10;
    if (target === null) return;
    keyEvent.preventDefault();
    select(Math.max(0, Math.min(target, page.entries.length - 1)), { focus: true });
  }

  let scrubTimer = 0;
  scrub.addEventListener("input", () => {
    const index = Number(scrub.value) - 1;
    markSelected(index);
    clearTimeout(scrubTimer);
    scrubTimer = setTimeout(() => select(index), SCRUB_DEBOUNCE_MS);
  });

  function markSelected(index) {
    const entry = page.entries[index];
    buttons().forEach((button, i) => {
      button.setAttribute("aria-current", i === index ? "true" : "false");
      button.tabIndex = i === index ? 0 : -1;
    });
    scrub.value = String(index + 1);
    scrub.setAttribute(
      "aria-valuetext",
      `version ${entry.event.version} of ${page.entries.length}: ${entry.event.event_type} at ${shortTime(entry.event.timestamp)}`,
    );
  }

  /** Shows the event at index and the API's state after it. */
  function select(index, { focus = false, force = false, state = null } = {}) {
    if (index < 0 || index >= page.entries.length) return;
    if (index === page.selected && !force && !state) {
      if (focus) buttons()[index]?.focus();
      return;
    }
    page.selected = index;
    markSelected(index);
    if (focus) buttons()[index]?.focus();
    const entry = page.entries[index];
    renderEvent(entry.event);
    if (state) showState(entry, state);
    else loadState(entry);
  }

  function renderEvent(event) {
    const row = (label, id, value) => [h("dt", {}, label), h("dd", { id }, value)];
    replace(
      eventDetail,
      h(
        "dl",
        { class: "stats" },
        row("Type", "ev-type", event.event_type),
        row("Time", "ev-time", h("time", { datetime: event.timestamp, title: event.timestamp }, event.timestamp)),
        row("Version", "ev-version", String(event.version)),
        row("Position", "ev-position", String(event.position)),
        row("Correlation id", "ev-correlation", text(event.correlation_id)),
        row("Causation id", "ev-causation", text(event.causation_id)),
        row("Event id", "ev-id", text(event.event_id)),
      ),
      h("h3", {}, "Payload"),
      h("div", { id: "ev-payload" }, payloadNode(event.payload)),
    );
  }

  async function loadState(entry) {
    const ticket = ++page.stateRequest;
    stateInfo.textContent = `Asking the API for the state at version ${entry.event.version}…`;
    try {
      const reply = await api.stateAtVersion(userId, entry.event.version);
      if (ticket !== page.stateRequest) return; // a newer selection won
      showState(entry, reply);
    } catch (error) {
      if (ticket === page.stateRequest) stateInfo.textContent = describe(error);
    }
  }

  /** reply: a state-at answer ({state, events_replayed, as_of?}). */
  function showState(entry, reply) {
    const state = reply.state ?? {};
    const changed = new Set(entry.changed_fields ?? []);
    const asked = reply.as_of ? `at ${reply.as_of}` : `at version ${entry.event.version}`;
    stateTitle.textContent = `State after v${entry.event.version} (${entry.event.event_type})`;
    replace(
      stateInfo,
      `Reconstructed by the API ${asked} by replaying `,
      h("strong", { id: "events-replayed", dataset: { count: reply.events_replayed ?? 0 } }, String(reply.events_replayed ?? 0)),
      ` event${reply.events_replayed === 1 ? "" : "s"}.`,
      changed.has("password") ? " The password changed here (never shown)." : "",
    );
    replace(
      stateTable,
      h(
        "table",
        { id: "state-table" },
        h("caption", { class: "sr-only" }, stateTitle.textContent),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Value"))),
        h(
          "tbody",
          {},
          stateFields(state).map((field) =>
            h(
              "tr",
              { class: changed.has(field) ? "changed" : null, dataset: { field } },
              h("th", { scope: "row" }, field, changed.has(field) ? [" ", h("span", { class: "badge badge-changed", "aria-hidden": "true" }, "changed"), srOnly("(changed by this event)")] : null),
              h("td", { class: "value" }, valueNode(state[field])),
            ),
          ),
        ),
      ),
    );
  }

  jumpForm.addEventListener("submit", async (submitEvent) => {
    submitEvent.preventDefault();
    clearMessages();
    const timestamp = jumpTime.value.trim();
    if (!timestamp) {
      complain("Enter a time, e.g. 2026-01-02T03:04:05Z.");
      jumpTime.focus();
      return;
    }
    try {
      const reply = await api.stateAtTime(userId, timestamp);
      const version = reply.state?.version ?? 0;
      const index = page.entries.findIndex((entry) => entry.event.version === version);
      if (index < 0) {
        complain(`The user had no state at ${timestamp}.`);
        return;
      }
      select(index, { state: reply });
      say(`State at ${timestamp}: version ${version}.`);
    } catch (error) {
      complain(error);
    }
  });

  // ------------------------------------------------------ compare ---

  function renderCompareChoices() {
    const keepA = compareA.value;
    // "To" follows the newest point while it is on it (new events move it along).
    const keepB = Number(compareB.value) === compareB.options.length - 1 ? "" : compareB.value;
    for (const select of [compareA, compareB]) {
      replace(
        select,
        page.entries.map((entry, index) =>
          h("option", { value: index }, `${eventLabel(entry.event)} · ${shortTime(entry.event.timestamp)}`),
        ),
      );
    }
    const last = page.entries.length - 1;
    compareA.value = keepA !== "" && Number(keepA) <= last ? keepA : "0";
    compareB.value = keepB !== "" && Number(keepB) <= last ? keepB : String(Math.max(last, 0));
  }

  main.querySelector("#compare-form").addEventListener("submit", async (submitEvent) => {
    submitEvent.preventDefault();
    const a = page.entries[Number(compareA.value)];
    const b = page.entries[Number(compareB.value)];
    if (!a || !b) return;
    try {
      const reply = await api.compare(userId, a.event.timestamp, b.event.timestamp);
      showComparison(a, b, reply);
    } catch (error) {
      replace(compareResult, h("p", { class: "error", role: "alert" }, describe(error)));
    }
  });

  function showComparison(a, b, reply) {
    const changes = reply.changes ?? [];
    const count = reply.change_count ?? changes.length;
    const head = h(
      "p",
      { id: "compare-summary" },
      `${count} field${count === 1 ? " differs" : "s differ"} between `,
      `${eventLabel(a.event)} (${shortTime(a.event.timestamp)}) and ${eventLabel(b.event)} (${shortTime(b.event.timestamp)}).`,
      reply.state1 ? "" : " The user did not exist yet at the first point.",
    );
    if (changes.length === 0) {
      replace(compareResult, head);
      return;
    }
    replace(
      compareResult,
      head,
      h(
        "div",
        { class: "table-wrap", tabindex: "0", "aria-labelledby": "compare-title" },
        h(
          "table",
          { id: "compare-table" },
          h("caption", { class: "sr-only" }, "Fields that differ"),
          h(
            "thead",
            {},
            h("tr", {}, ["Field", "Before", "After"].map((t) => h("th", { scope: "col" }, t))),
          ),
          h(
            "tbody",
            {},
            changes.map((change) =>
              h(
                "tr",
                { dataset: { field: change.field } },
                h("th", { scope: "row" }, change.field),
                h("td", { class: "before" }, valueNode(change.before)),
                h("td", { class: "after" }, valueNode(change.after)),
              ),
            ),
          ),
        ),
      ),
    );
  }

  // ---------------------------------------------------- snapshots ---

  const created = [];

  async function loadSnapshots() {
    const newest = h("p", { id: "snapshot-newest" });
    const viaSnapshot = h("p", { id: "snapshot-state" });
    const list = h("ul", { id: "snapshot-list" });
    const button = h("button", { type: "button", id: "snapshot-create" }, "Create snapshot");
    button.addEventListener("click", async () => {
      button.disabled = true;
      clearMessages();
      try {
        const reply = await api.createSnapshot(userId);
        created.push(reply.snapshot);
        say(reply.message || `Snapshot taken at version ${reply.snapshot.version}.`);
        await loadSnapshots();
        renderTimeline();
        if (page.selected >= 0) markSelected(page.selected);
      } catch (error) {
        complain(error);
        button.disabled = false;
      }
    });
    replace(
      snapshots,
      h("h2", { id: "snapshots-title" }, "Snapshots"),
      newest,
      viaSnapshot,
      h("h3", {}, "Snapshots seen"),
      list,
      button,
    );
    let seen = [...created];
    try {
      const { snapshot } = await api.getSnapshot(userId);
      newest.textContent = `Newest: version ${snapshot.version}, taken ${shortTime(snapshot.created_at)} (format ${snapshot.schema_version}).`;
      seen.push(snapshot);
    } catch (error) {
      newest.textContent =
        error instanceof api.ApiError && error.status === 404 ? "No snapshot yet." : describe(error);
    }
    try {
      const reply = await api.stateFromSnapshot(userId);
      viaSnapshot.replaceChildren(
        "Reading the current state ",
        reply.snapshot_used ? `from the snapshot at version ${reply.snapshot_version}` : "without a snapshot",
        " replayed ",
        h("strong", { id: "snapshot-replayed" }, String(reply.events_replayed ?? 0)),
        ` event${reply.events_replayed === 1 ? "" : "s"}.`,
      );
    } catch (error) {
      viaSnapshot.textContent = describe(error);
    }
    const byVersion = new Map(seen.map((s) => [s.version, s]));
    seen = [...byVersion.values()].sort((x, y) => y.version - x.version);
    page.snapshotVersions = new Set(byVersion.keys());
    replace(
      list,
      seen.length
        ? seen.map((s) =>
            h("li", { dataset: { version: s.version } }, `version ${s.version} · ${shortTime(s.created_at)}`),
          )
        : h("li", { class: "muted" }, "none"),
    );
  }

  // ------------------------------------------------------ live ---

  let refreshTimer = 0;
  const liveFeed = renderLive(live, {
    userId,
    fromVersion: () => page.entries.at(-1)?.event.version ?? 0,
    onEvent() {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => refresh({ follow: true }), 150);
    },
  });

  const stopActions = api.isAdmin()
    ? renderActions(actions, userId, { afterChange: () => refresh({ follow: true }) })
    : (actions.remove(), () => {});

  refresh().then(() => liveFeed.noteHead(page.entries.at(-1)?.event.position ?? 0));

  return () => {
    controller.abort();
    clearTimeout(refreshTimer);
    clearTimeout(scrubTimer);
    liveFeed.stop();
    stopActions();
  };
}

function describe(error) {
  return error instanceof api.ApiError ? error.describe() : String(error?.message ?? error);
}
