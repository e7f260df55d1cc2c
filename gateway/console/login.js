// Sign in: POST /v1/login with email and password.

import * as api from "./api.js";
import { h, replace } from "./dom.js";
import { clearMessages, complain, say } from "./notices.js";

/** The sign-in form; a successful login changes the session, which renders the next view. */
export function renderLogin(main) {
  const email = h("input", {
    id: "login-email",
    name: "email",
    type: "email",
    autocomplete: "username",
    required: true,
  });
  const password = h("input", {
    id: "login-password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const submit = h("button", { type: "submit", id: "login-submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card login", "aria-labelledby": "login-title", novalidate: true },
    h("h1", { id: "login-title" }, "Sign in"),
    h("p", { class: "muted" }, "Use the account you registered, or the admin account."),
    h("div", { class: "field" }, h("label", { for: "login-email" }, "Email"), email),
    h("div", { class: "field" }, h("label", { for: "login-password" }, "Password"), password),
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearMessages();
    if (!email.value || !password.value) {
      complain("Enter your email and password.");
      (email.value ? password : email).focus();
      return;
    }
    submit.disabled = true;
    try {
      const reply = await api.login(email.value.trim(), password.value);
      say(`Signed in as ${reply.user.email}.`);
    } catch (error) {
      complain(error);
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  replace(main, form);
  email.focus();
  return null;
}
