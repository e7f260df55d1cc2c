// Admin actions on a user: deactivate, reactivate, reset password, erase.
//
// Each action is offered when the served OpenAPI document lists its route;
// otherwise its button is disabled with a note naming the missing route.
// Each asks for confirmation in a modal <dialog> (focus stays inside, Escape
// cancels, focus returns to the button), then calls the API; a refusal is
// shown with the API's status, code and message. An action the API answers
// 404/405/501 for (a route that is not there after all) is disabled too.

import * as api from "./api.js";
import { h, replace } from "./dom.js";
import { clearMessages, complain, say } from "./notices.js";

const ACTIONS = [
  {
    id: "deactivate",
    label: "Deactivate",
    verb: "POST",
    route: "/users/{id}/deactivate",
    question: "Deactivate this account? The user can no longer sign in or change it.",
    inputs: [{ id: "confirm-reason", label: "Reason (optional)", type: "text", required: false }],
    run: (id, values) => api.deactivate(id, values["confirm-reason"] ?? ""),
    done: "Account deactivated.",
  },
  {
    id: "activate",
    label: "Reactivate",
    verb: "POST",
    route: "/users/{id}/activate",
    question: "Reactivate this account? The user can sign in again.",
    inputs: [],
    run: (id) => api.activate(id),
    done: "Account reactivated.",
  },
  {
    id: "reset-password",
    label: "Reset password",
    verb: "PUT",
    route: "/users/{id}/password",
    question: "Set a new password for this user? Their old password stops working.",
    inputs: [
      {
        id: "confirm-new-password",
        label: "New password",
        type: "password",
        required: true,
        autocomplete: "new-password",
      },
    ],
    run: (id, values) => api.resetPassword(id, values["confirm-new-password"] ?? ""),
    done: "Password reset.",
  },
  {
    id: "erase",
    label: "Erase personal data",
    verb: "DELETE",
    route: "/users/{id}",
    question:
      "Erase this user's personal data? Their events stay, with personal fields reading [ERASED]. This cannot be undone.",
    inputs: [],
    run: (id) => api.erase(id),
    done: "Personal data erased.",
    danger: true,
  },
];

/** Renders the actions into container; returns a cleanup function. */
export function renderActions(container, userId, { afterChange }) {
  const result = h("div", { id: "action-result", role: "alert", "aria-live": "assertive" });
  const list = h("ul", { class: "actions" });
  replace(
    container,
    h("h2", { id: "actions-title" }, "Admin actions"),
    h("p", { class: "muted" }, "Each asks for confirmation; the API decides."),
    list,
    result,
  );
  const dialog = buildDialog();
  document.body.append(dialog.node);

  for (const action of ACTIONS) {
    const button = h(
      "button",
      { type: "button", id: `action-${action.id}`, class: action.danger ? "danger" : null },
      action.label,
    );
    const note = h("span", { class: "note muted", id: `action-${action.id}-note` });
    button.setAttribute("aria-describedby", note.id);
    list.append(h("li", {}, button, " ", note));
    api.offers(action.verb, action.route).then((offered) => {
      if (!offered) disable(button, note, action);
    });
    button.addEventListener("click", async () => {
      const values = await dialog.ask(action);
      button.focus();
      if (values === null) {
        say(`${action.label}: cancelled.`);
        return;
      }
      clearMessages();
      result.textContent = "";
      result.className = "";
      try {
        await action.run(userId, values);
        result.className = "ok";
        result.textContent = `${action.label}: ${action.done}`;
        say(action.done);
        afterChange();
      } catch (error) {
        if (error instanceof api.ApiError && error.notOffered) disable(button, note, action);
        result.className = "error";
        result.textContent = `${action.label} was refused: ${
          error instanceof api.ApiError ? error.describe() : error
        }`;
        complain(error);
      }
    });
  }
  return () => dialog.node.remove();
}

function disable(button, note, action) {
  button.disabled = true;
  note.textContent = `Not offered by this API (no ${action.verb} /v1${action.route}).`;
}

/** One modal dialog, reused by every action: ask(action) resolves to the inputs' values or null. */
function buildDialog() {
  const title = h("h2", { id: "confirm-title" });
  const question = h("p", { id: "confirm-question" });
  const fields = h("div", { class: "fields" });
  const ok = h("button", { type: "submit", id: "confirm-ok", value: "ok" }, "Confirm");
  const cancel = h("button", { type: "button", id: "confirm-cancel" }, "Cancel");
  const form = h("form", { method: "dialog" }, title, question, fields, h("div", { class: "buttons" }, cancel, ok));
  const node = h(
    "dialog",
    { id: "confirm-dialog", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-question" },
    form,
  );
  let settle = null;

  function finish(values) {
    if (node.open) node.close();
    if (settle) settle(values);
    settle = null;
  }

  cancel.addEventListener("click", () => finish(null));
  node.addEventListener("cancel", (event) => {
    event.preventDefault(); // Escape: close through finish so the promise settles
    finish(null);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = {};
    for (const input of fields.querySelectorAll("input")) {
      if (input.required && !input.value) {
        input.focus();
        return;
      }
      values[input.id] = input.value;
    }
    finish(values);
  });

  function ask(action) {
    title.textContent = `${action.label}?`;
    question.textContent = action.question;
    ok.textContent = action.label;
    ok.className = action.danger ? "danger" : "";
    replace(
      fields,
      action.inputs.map((input) =>
        h(
          "div",
          { class: "field" },
          h("label", { for: input.id }, input.label),
          h("input", {
            id: input.id,
            type: input.type,
            required: input.required,
            autocomplete: input.autocomplete ?? "off",
          }),
        ),
      ),
    );
    return new Promise((resolve) => {
      settle = resolve;
      node.showModal();
      (fields.querySelector("input") ?? cancel).focus();
    });
  }

  return { node, ask };
}
