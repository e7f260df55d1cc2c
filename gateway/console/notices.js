// The page's two live regions: polite notices (role=status) and errors
// (role=alert), read out by screen readers as they change.

import { ApiError } from "./api.js";

/** A polite status message (success, progress). */
export function say(message) {
  document.getElementById("notice").textContent = message;
}

/** An assertive error message; an ApiError is described with its status and code. */
export function complain(error) {
  const text = error instanceof ApiError ? error.describe() : String(error?.message ?? error);
  document.getElementById("alert").textContent = text;
}

export function clearMessages() {
  say("");
  document.getElementById("alert").textContent = "";
}
