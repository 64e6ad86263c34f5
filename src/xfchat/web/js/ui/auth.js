// Log in and register.

import { h, replace, describe } from "../dom.js";

function field(id, text, attrs) {
  return [h("label", { for: id }, text), h("input", { id, name: id, required: true, ...attrs })];
}

export function renderAuth(root, session, onIn, mode = "login") {
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { class: "btn btn-primary btn-wide", type: "submit" }, mode === "login" ? "Log in" : "Create account");
  const fields =
    mode === "login"
      ? [...field("login", "Username or email", { autocomplete: "username", autofocus: true }), ...field("password", "Password", { type: "password", autocomplete: "current-password" })]
      : [
          ...field("username", "Username", { autocomplete: "username", minlength: 2, maxlength: 32, pattern: "[A-Za-z0-9_.]+", autofocus: true }),
          ...field("email", "Email", { type: "email", autocomplete: "email" }),
          ...field("display_name", "Display name (optional)", { required: false, maxlength: 64 }),
          ...field("password", "Password", { type: "password", autocomplete: "new-password", minlength: 8, maxlength: 256 }),
        ];
  const form = h(
    "form",
    {
      class: "auth-form",
      "aria-labelledby": "auth-title",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const data = Object.fromEntries(new FormData(form));
        submit.disabled = true;
        error.textContent = "";
        try {
          if (mode === "login") await session.login(data.login, data.password);
          else {
            if (!data.display_name) delete data.display_name;
            await session.register(data);
          }
          onIn();
        } catch (err) {
          error.textContent = describe(err);
          submit.disabled = false;
        }
      },
    },
    h("div", { class: "brand", "aria-hidden": "true" }, "XFChat"),
    h("h1", { id: "auth-title" }, mode === "login" ? "Welcome back!" : "Create an account"),
    h("p", { class: "muted" }, mode === "login" ? "Log in to chat with your friends and servers." : "Pick a username; you can change your display name later."),
    fields,
    error,
    submit,
    h(
      "p",
      { class: "auth-switch" },
      mode === "login" ? "Need an account? " : "Already have an account? ",
      h("button", { class: "link-btn", type: "button", onclick: () => renderAuth(root, session, onIn, mode === "login" ? "register" : "login") }, mode === "login" ? "Register" : "Log in"),
    ),
  );
  replace(root, h("main", { class: "auth" }, form));
  root.className = "auth-page";
  const first = form.querySelector("input");
  if (first) first.focus();
}
