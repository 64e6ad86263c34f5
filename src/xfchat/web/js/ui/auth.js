// Log in (with the two-factor step when the account has it) and register.

import { h, replace, describe, waitText, hold, held } from "../dom.js";

function field(id, text, attrs) {
  return [h("label", { for: id }, text), h("input", { id, name: id, required: true, ...attrs })];
}

// The card every step is drawn in: a brand, a title, a line under it, the fields, an
// alert line and the submit button, then whatever follows (links to other steps).
function card(root, { title, intro, fields, submitText, onSubmit, note = "", after = [] }) {
  const error = h("p", { class: "form-error", role: "alert" }, note);
  const submit = h("button", { class: "btn btn-primary btn-wide", type: "submit" }, submitText);
  const form = h(
    "form",
    {
      class: "auth-form",
      "aria-labelledby": "auth-title",
      onsubmit: async (ev) => {
        ev.preventDefault();
        if (held(submit)) return; // (a request on its way: see dom.js hold)
        hold(submit, true);
        error.textContent = "";
        try {
          await onSubmit(Object.fromEntries(new FormData(form)), error);
        } catch (err) {
          error.textContent = describe(err);
        } finally {
          hold(submit, false);
        }
      },
    },
    h("div", { class: "brand", "aria-hidden": "true" }, "XFChat"),
    h("h1", { id: "auth-title" }, title),
    h("p", { class: "muted" }, intro),
    fields,
    error,
    submit,
    after,
  );
  replace(root, h("main", { class: "auth" }, form));
  root.className = "auth-page";
  const first = [...form.querySelectorAll("input")].find((i) => !i.value);
  if (first) first.focus();
  return form;
}

function switchLink(text, buttonText, onclick) {
  return h("p", { class: "auth-switch" }, text, h("button", { class: "link-btn", type: "button", onclick }, buttonText));
}

export function renderAuth(root, session, onIn, mode = "login", { note = "", login = "" } = {}) {
  const again = (next, opts) => renderAuth(root, session, onIn, next, opts);
  if (mode === "login") {
    card(root, {
      title: "Welcome back!",
      intro: "Log in to chat with your friends and servers.",
      fields: [
        ...field("login", "Username or email", { autocomplete: "username", value: login }),
        ...field("password", "Password", { type: "password", autocomplete: "current-password" }),
      ],
      submitText: "Log in",
      note,
      onSubmit: async (data) => {
        const pending = await session.login(data.login, data.password);
        if (!pending) return onIn();
        renderCode(root, session, onIn, { ...pending, login: data.login, again });
      },
      after: switchLink("Need an account? ", "Register", () => again("register")),
    });
    return;
  }
  card(root, {
    title: "Create an account",
    intro: "Pick a username; you can change your display name later.",
    fields: [
      ...field("username", "Username", { autocomplete: "username", minlength: 2, maxlength: 32, pattern: "[A-Za-z0-9_.]+" }),
      ...field("email", "Email", { type: "email", autocomplete: "email" }),
      ...field("display_name", "Display name (optional)", { required: false, maxlength: 64 }),
      ...field("password", "Password", { type: "password", autocomplete: "new-password", minlength: 8, maxlength: 256 }),
    ],
    submitText: "Create account",
    onSubmit: async (data) => {
      if (!data.display_name) delete data.display_name;
      await session.register(data);
      onIn();
    },
    after: switchLink("Already have an account? ", "Log in", () => again("login")),
  });
}

// The second step: a code of the authenticator app, or one of the recovery codes. A
// ticket lives `expiresIn` seconds (and dies with a password change): then the
// password step again, saying why.
function renderCode(root, session, onIn, { ticket, expiresIn, login, again, recovery = false, note = "" }) {
  const expired = () => again("login", { login, note: "Your sign-in took too long (or your password changed). Log in again." });
  let timer = null;
  const other = () => {
    clearTimeout(timer);
    renderCode(root, session, onIn, { ticket, expiresIn, login, again, recovery: !recovery });
  };
  const form = card(root, {
    title: "Two-factor sign-in",
    intro: recovery
      ? "Enter one of the recovery codes you saved when you turned two-factor sign-in on. Each works once."
      : "Enter the 6-digit code your authenticator app shows for XFChat.",
    fields: recovery
      ? field("code", "Recovery code", { autocomplete: "off", spellcheck: "false", maxlength: 64, placeholder: "xxxxx-xxxxx" })
      : field("code", "Authentication code", { autocomplete: "one-time-code", inputmode: "numeric", maxlength: 64, placeholder: "123456" }),
    submitText: "Log in",
    note,
    onSubmit: async (data, error) => {
      try {
        await session.loginTwoFactor(ticket, data.code.trim());
      } catch (err) {
        if (err.code === "INVALID_TICKET") return expired();
        error.textContent = codeError(err, recovery);
        return undefined;
      }
      clearTimeout(timer);
      return onIn();
    },
    after: [
      switchLink("", recovery ? "Use your authenticator app instead" : "Use a recovery code instead", other),
      switchLink("", "Back to the login", () => {
        clearTimeout(timer);
        again("login", { login });
      }),
    ],
  });
  timer = setTimeout(() => root.contains(form) && expired(), expiresIn * 1000);
}

function codeError(err, recovery) {
  if (err.code === "INVALID_TWO_FACTOR_CODE") {
    return recovery
      ? "That recovery code is not right, or it was used already."
      : "That code is not right, or it was used already. Wait for your app's next code and try that.";
  }
  if (err.code === "RATE_LIMITED") return `Too many tries. For your safety, wait ${waitText(err)} before the next one.`;
  return describe(err);
}
