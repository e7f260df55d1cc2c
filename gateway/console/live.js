// Live: events as they are appended, the store's head, the read model's position and lag.
//
// Admins read the NDJSON subscription (GET /v1/events/subscribe) with fetch
// and a stream reader, starting at the store's head (GET /v1/events/count:
// positions are gapless from 1, so the count is the head); its checkpoints
// keep the head current while nothing happens. The subscription is for
// admins only, so for anyone else the console polls the user's own stream
// (GET /v1/streams/{id}?from_version=) every POLL_MS and says so.
//
// The read model's position comes from /health/ready when the gateway has
// it (the projector's position, head and lag). Otherwise the console
// measures it with the API every client has: GET /v1/users/{me}?min_position=P
// answers once the projection has applied position P, so the newest P it
// answered for is a position the read model has reached, and the time from
// the event's arrival here to that answer is the lag.

import * as api from "./api.js";
import { h, replace } from "./dom.js";
import { eventLabel, shortTime } from "./format.js";

const POLL_MS = 2000;
const RECONNECT_MS = 2000;
const READINESS_MS = 3000;
const FEED_MAX = 25;

/**
 * Renders the live panel into container and starts it; returns a function that stops it.
 * userId: show only this user's events (null: every event, admins only).
 * onEvent(event): called for each arriving event of userId.
 * fromVersion(): the user's newest version known to the page (for polling).
 * Returns {stop(), noteHead(position)}: the page may tell it of a newer position it read.
 */
export function renderLive(container, { userId, onEvent, fromVersion = () => 0 }) {
  const controller = new AbortController();
  const { signal } = controller;
  const me = api.currentSession().user.id;
  const stats = {
    mode: h("dd", { id: "live-mode" }, "starting…"),
    head: h("dd", { id: "live-head" }, "—"),
    readModel: h("dd", { id: "live-read-model" }, "—"),
    lag: h("dd", { id: "live-lag" }, "—"),
  };
  const feed = h("ol", {
    id: "live-feed",
    class: "feed",
    "aria-live": "polite",
    "aria-relevant": "additions",
    "aria-labelledby": "live-feed-title",
  });
  const empty = h("p", { class: "muted", id: "live-empty" }, "No event yet since this page opened.");
  replace(
    container,
    h("h2", { id: "live-title" }, "Live"),
    h(
      "dl",
      { class: "stats" },
      h("dt", {}, "Connection"),
      stats.mode,
      h("dt", {}, "Store head (last position)"),
      stats.head,
      h("dt", {}, "Read model position"),
      stats.readModel,
      h("dt", {}, "Read model lag"),
      stats.lag,
    ),
    h("h3", { id: "live-feed-title" }, userId ? "New events of this user" : "New events"),
    empty,
    feed,
  );

  let head = 0;
  let readModel = 0;
  let lastLag = "";
  const arrivedAt = new Map(); // position -> performance.now() when it arrived here

  function showNumbers() {
    stats.head.textContent = head ? String(head) : "—";
    stats.readModel.textContent = readModel ? String(readModel) : "—";
    if (head && readModel) {
      const behind = Math.max(head - readModel, 0);
      stats.lag.textContent = `${behind} event${behind === 1 ? "" : "s"} behind${lastLag}`;
    }
  }

  function noteHead(position) {
    if (position > head) head = position;
    showNumbers();
    probeSoon();
  }

  function arrive(event) {
    noteHead(event.position);
    if (userId && event.aggregate_id !== userId) return;
    arrivedAt.set(event.position, performance.now());
    empty.hidden = true;
    feed.prepend(
      h(
        "li",
        { dataset: { position: event.position, eventType: event.event_type } },
        h("span", { class: "pos" }, `#${event.position}`),
        " ",
        h("strong", {}, eventLabel(event)),
        " ",
        h("time", { datetime: event.timestamp }, shortTime(event.timestamp)),
        userId ? null : h("span", { class: "muted" }, ` user ${event.aggregate_id}`),
      ),
    );
    while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
    if (onEvent) onEvent(event);
  }

  // ----------------------------------------------------- the events ---

  async function subscribeLoop() {
    let from = (await api.countEvents()).count ?? 0;
    noteHead(from);
    while (!signal.aborted) {
      try {
        stats.mode.textContent = "live: subscribed to the event stream";
        await api.subscribe({
          fromPosition: from,
          signal,
          onMessage(message) {
            const events = message.event ? [message.event] : (message.batch?.events ?? []);
            for (const event of events) {
              from = Math.max(from, event.position);
              arrive(event);
            }
            if (message.checkpoint) noteHead(Number(message.checkpoint.position));
          },
        });
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof api.ApiError && [401, 403].includes(error.status)) throw error;
        stats.mode.textContent = `reconnecting (${error.message ?? error})`;
      }
      await sleep(RECONNECT_MS, signal);
    }
  }

  async function pollLoop(reason) {
    stats.mode.textContent = `polling every ${POLL_MS / 1000} s (${reason})`;
    let next = fromVersion() + 1;
    while (!signal.aborted) {
      try {
        const reply = await api.readStream(userId, next);
        for (const event of reply.events ?? []) {
          next = Math.max(next, event.version + 1);
          arrive(event);
        }
      } catch (error) {
        if (signal.aborted) return;
        stats.mode.textContent = `polling, last attempt failed: ${error.message ?? error}`;
      }
      await sleep(POLL_MS, signal);
    }
  }

  async function events() {
    if (api.isAdmin()) {
      try {
        await subscribeLoop();
        return;
      } catch (error) {
        if (signal.aborted || !userId) {
          stats.mode.textContent = `not live: ${error.message ?? error}`;
          return;
        }
      }
    }
    if (userId) await pollLoop("the event stream is for admins");
    else stats.mode.textContent = "not live: the event stream is for admins";
  }

  // ------------------------------------------------- the read model ---

  let readinessOffered = true;
  let probing = false;

  async function readinessLoop() {
    while (!signal.aborted && readinessOffered) {
      try {
        const report = await api.readiness(signal);
        const projector = report?.backends?.query?.checks?.projector;
        if (report === null) readinessOffered = false;
        else if (projector && projector.position !== undefined) {
          readModel = Number(projector.position);
          if (projector.head) noteHead(Number(projector.head));
          lastLag = projector.reason ? ` (${projector.reason})` : "";
          showNumbers();
        } else if (projector === undefined) readinessOffered = false;
      } catch {
        // an unreachable gateway shows in the connection line
      }
      if (readinessOffered) await sleep(READINESS_MS, signal);
    }
    probeSoon();
  }

  /** Measures the read model against the head, one wait at a time (see the module comment). */
  async function probeSoon() {
    if (readinessOffered || probing || signal.aborted || head <= readModel) return;
    probing = true;
    const target = head;
    try {
      await api.getUser(me, target, signal);
      readModel = Math.max(readModel, target);
      const arrived = arrivedAt.get(target);
      lastLag = arrived === undefined ? "" : `; applied ${Math.round(performance.now() - arrived)} ms after it arrived here`;
      arrivedAt.clear();
    } catch (error) {
      if (signal.aborted) return;
      lastLag = ` (position ${target} not applied yet: ${error.message ?? error})`;
      await sleep(POLL_MS, signal);
    } finally {
      probing = false;
      showNumbers();
    }
    if (head > readModel) probeSoon();
  }

  events();
  readinessLoop();
  return { stop: () => controller.abort(), noteHead };
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
