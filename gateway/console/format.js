// How values read on the page: states, payloads, secrets and erased data.
//
// The API already redacts secrets ("[REDACTED]") and erased personal data
// ("[ERASED]"); the console never sees either and only shows those markers
// as such (a labelled badge), never as if they were the value.

import { h } from "./dom.js";

export const REDACTED = "[REDACTED]";
export const ERASED = "[ERASED]";

/** The order a state's fields are shown in; fields the API adds later follow. */
export const STATE_FIELDS = [
  "user_id",
  "email",
  "role",
  "status",
  "version",
  "created_at",
  "updated_at",
  "password_version",
  "password_changed_at",
  "email_changed_at",
  "deactivated_at",
  "deactivation_reason",
  "last_login_at",
  "login_count",
];

/** The fields to show for these states: the known ones, then any other key, in order. */
export function stateFields(...states) {
  const fields = [...STATE_FIELDS];
  for (const state of states) {
    for (const key of Object.keys(state ?? {})) if (!fields.includes(key)) fields.push(key);
  }
  return fields;
}

/** The text a state value reads as; "—" for absent or empty. */
export function text(value) {
  if (value === undefined || value === null || value === "") return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** A value as a node: markers become badges, everything else text. */
export function valueNode(value) {
  if (value === REDACTED) return badge("secret", "redacted secret", "secret (redacted)");
  if (value === ERASED) return badge("erased", "erased personal data", "erased");
  return text(value);
}

function badge(kind, label, shown) {
  return h("span", { class: `badge badge-${kind}`, title: label, dataset: { marker: kind } }, shown);
}

/** An event payload as a definition list, nested objects indented. */
export function payloadNode(payload) {
  const entries = Object.entries(payload ?? {});
  if (entries.length === 0) return h("p", { class: "muted" }, "(empty payload)");
  return h(
    "dl",
    { class: "payload" },
    entries.map(([key, value]) => [
      h("dt", {}, key),
      h(
        "dd",
        { dataset: { key } },
        value && typeof value === "object" && !Array.isArray(value)
          ? payloadNode(value)
          : valueNode(Array.isArray(value) ? JSON.stringify(value) : value),
      ),
    ]),
  );
}

/** "2026-12-02 13:55:17.255 UTC" from an RFC 3339 time (shown; the raw time is the title). */
export function shortTime(rfc3339) {
  if (!rfc3339) return "—";
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d{1,3})?/.exec(rfc3339);
  return match ? `${match[1]} ${match[2]}${match[3] ?? ""} UTC` : rfc3339;
}

/** A short label of an event for lists: "v3 user.email.changed". */
export function eventLabel(event) {
  return `v${event.version} ${event.event_type}`;
}
