// The two-factor tab of the user settings: set up an authenticator (its otpauth URI as
// a QR code drawn here, and as text), turn it on with a code, see the recovery codes
// once, ask for new ones, turn it off.
//
// The QR code is encoded by uqr (vendor/uqr.js, MIT, from the npm registry: see
// vendor/uqr.LICENSE.txt) and drawn on a canvas: the secret never leaves the page.

import { h, replace, toast, describe, actionForm } from "../dom.js";
import { encode } from "../vendor/uqr.js";

// Black modules on white with the standard quiet zone of four modules, whole pixels
// per module, so any phone's camera (and the tests' decoder) reads it.
export function qrCanvas(text, label) {
  const { data, size } = encode(text, { ecc: "M", border: 4 });
  const scale = Math.max(4, Math.floor(256 / size));
  const canvas = h("canvas", { class: "qr", width: size * scale, height: size * scale, role: "img", "aria-label": label });
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#000";
  data.forEach((row, y) => row.forEach((dark, x) => dark && ctx.fillRect(x * scale, y * scale, scale, scale)));
  return canvas;
}

function passwordField(id, text = "Your password") {
  return [h("label", { for: id }, text), h("input", { id, name: "password", type: "password", required: true, autocomplete: "current-password", maxlength: 256 })];
}

// A form of a few fields whose submit posts them to `path` and hands the answer on.
function form(app, { label, path, fields, submitText, danger = false, then }) {
  const run = async (el) => {
    const body = Object.fromEntries(new FormData(el));
    if (body.code) body.code = body.code.trim();
    then(await app.session.call("POST", path, body));
  };
  return actionForm({ label, fields, submitText, danger, run });
}

// `current()` says whether the tab is still the one shown once the status arrives.
export async function twoFactorTab(app, panel, redraw, current) {
  replace(panel, h("h3", null, "Two-factor sign-in"), h("p", { class: "muted" }, "Loading…"));
  let state;
  try {
    state = await app.session.call("GET", "/api/users/@me/two-factor");
  } catch (err) {
    return toast(describe(err));
  }
  if (!current()) return undefined;
  if (!state.enabled) {
    replace(
      panel,
      h("h3", null, "Two-factor sign-in"),
      h("p", null, "Off. With it on, logging in takes your password and a code from an authenticator app on your phone, so a stolen password alone gets nobody in."),
      form(app, {
        label: "Set up",
        path: "/api/users/@me/two-factor/setup",
        fields: passwordField("tf-setup-password"),
        submitText: "Set up two-factor sign-in",
        then: (setup) => enrol(app, panel, setup, redraw),
      }),
    );
    return undefined;
  }
  const left = state.recovery_codes_left;
  replace(
    panel,
    h("h3", null, "Two-factor sign-in"),
    h("p", { class: "tf-on" }, h("strong", null, "On."), ` ${left} recovery code${left === 1 ? "" : "s"} left.`),
    h("h4", null, "New recovery codes"),
    h("p", { class: "hint" }, "Ten new codes; the ones you have now stop working."),
    form(app, {
      label: "New recovery codes",
      path: "/api/users/@me/two-factor/recovery-codes",
      fields: [...passwordField("tf-codes-password"), h("label", { for: "tf-codes-code" }, "Code from your app, or a recovery code"), h("input", { id: "tf-codes-code", name: "code", required: true, autocomplete: "one-time-code", maxlength: 64 })],
      submitText: "Get new recovery codes",
      then: (out) => showCodes(panel, out.recovery_codes, redraw),
    }),
    h("h4", null, "Turn off"),
    form(app, {
      label: "Turn off",
      path: "/api/users/@me/two-factor/disable",
      fields: [...passwordField("tf-off-password"), h("label", { for: "tf-off-code" }, "Code from your app, or a recovery code"), h("input", { id: "tf-off-code", name: "code", required: true, autocomplete: "one-time-code", maxlength: 64 })],
      submitText: "Turn off two-factor sign-in",
      danger: true,
      then: () => {
        toast("Two-factor sign-in is off", "info");
        redraw();
      },
    }),
  );
  return undefined;
}

function enrol(app, panel, setup, redraw) {
  replace(
    panel,
    h("h3", null, "Set up two-factor sign-in"),
    h(
      "ol",
      { class: "steps" },
      h("li", null, h("p", null, "Scan this QR code with your authenticator app:"), qrCanvas(setup.otpauth_uri, "QR code of your authenticator key")),
      h(
        "li",
        null,
        h("p", null, "Or, if you cannot scan it, type this key into the app:"),
        h("code", { class: "tf-secret", "aria-label": "Authenticator key" }, setup.secret.replace(/(.{4})/g, "$1 ").trim()),
        h("p", { class: "hint" }, "The same, as the app's link:"),
        h("code", { class: "tf-uri", "aria-label": "Authenticator link" }, setup.otpauth_uri),
      ),
      h(
        "li",
        null,
        h("p", null, "Enter the 6-digit code the app now shows, to prove it works:"),
        form(app, {
          label: "Turn on",
          path: "/api/users/@me/two-factor/enable",
          fields: [h("label", { for: "tf-enable-code" }, "Code from your app"), h("input", { id: "tf-enable-code", name: "code", required: true, autocomplete: "one-time-code", inputmode: "numeric", maxlength: 64 })],
          submitText: "Turn on",
          then: (out) => showCodes(panel, out.recovery_codes, redraw, true),
        }),
      ),
    ),
  );
}

// Recovery codes are shown this once: the server keeps only their hashes.
function showCodes(panel, codes, redraw, justEnabled = false) {
  const text = codes.join("\n");
  replace(
    panel,
    h("h3", null, justEnabled ? "Two-factor sign-in is on" : "New recovery codes"),
    h("p", null, "Save these recovery codes somewhere safe. Each one logs you in once if you lose your phone. They are shown only now."),
    h("ol", { class: "recovery-codes", "aria-label": "Recovery codes" }, codes.map((c) => h("li", null, h("code", null, c)))),
    h(
      "div",
      { class: "row-end" },
      h("button", { class: "btn", type: "button", onclick: () => navigator.clipboard.writeText(text).then(() => toast("Copied", "info"), () => toast("Could not copy: select and copy them by hand")) }, "Copy"),
      h("button", { class: "btn btn-primary", type: "button", onclick: redraw }, "I have saved them"),
    ),
  );
}
