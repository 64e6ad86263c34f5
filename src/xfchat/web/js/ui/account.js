// User settings: profile (display name, avatar), username and email (with the password,
// and a code with two-factor sign-in on), status and custom status, password,
// two-factor sign-in, sessions (log out elsewhere), who may send you direct messages,
// and deleting the account. Each form says its own errors beside it; what the server announces
// (user.updated, presence.updated) keeps the rest of the client current.

import { h, replace, avatar, displayName, fmtFull, toast, describe, confirmDialog, tabbedDialog, actionForm, formError, focusLike } from "../dom.js";
import { twoFactorTab } from "./two_factor.js";

const TABS = [
  ["profile", "Profile"],
  ["identity", "Username and email"],
  ["status", "Status"],
  ["password", "Password"],
  ["two-factor", "Two-factor sign-in"],
  ["sessions", "Sessions"],
  ["privacy", "Privacy"],
  ["delete", "Delete account"],
];

const STATUSES = [
  ["online", "Online"],
  ["idle", "Idle"],
  ["dnd", "Do not disturb"],
  ["invisible", "Invisible (shown as offline)"],
];

export function openAccount(app) {
  const view = new Account(app);
  // (a change made in another session shows here live)
  const offPrivacy = app.store.on("privacy", () => {
    const checked = view.panel && view.panel.querySelector("input[name=dm-policy]:checked");
    if (view.tab === "privacy" && (!checked || checked.value !== app.store.privacy.direct_messages)) view.render();
  });
  // (an email changed in another session shows here, unless a change is being typed)
  const offMe = app.store.on("me", () => {
    const typing = view.panel && view.panel.querySelector("#me-id-password");
    if (view.tab === "identity" && !(typing && typing.value)) view.render();
  });
  const off = () => {
    offPrivacy();
    offMe();
  };
  tabbedDialog(
    "User settings",
    TABS,
    (key, panel) => {
      view.panel = panel;
      view.tab = key;
      view.render();
    },
    { onClose: off },
  );
}

class Account {
  constructor(app) {
    this.app = app;
    this.panel = null;
    this.tab = null;
  }

  get me() {
    return this.app.store.me;
  }

  call(method, path, body) {
    return this.app.session.call(method, path, body);
  }

  render() {
    const draw = { profile: this.profile, identity: this.identity, status: this.status, password: this.password, "two-factor": this.twoFactor, sessions: this.sessions, privacy: this.privacy, delete: this.deleteAccount }[this.tab];
    if (!draw) return;
    // (a tab is drawn anew after a save, or a change from another session: the focus
    // stays on the control it was on, as drawn again, not on the page)
    const active = this.panel && this.panel.contains(document.activeElement) ? document.activeElement : null;
    draw.call(this);
    if (active && !active.isConnected) focusLike(this.panel, active);
  }

  // Keep the client's copy of me current at once (the event follows, and changes nothing).
  adopt(user) {
    this.app.store.apply("user.updated", user);
    this.render();
  }

  profile() {
    const me = this.me;
    const name = h("input", { id: "me-display-name", maxlength: 64, value: me.display_name || "", placeholder: me.username });
    const avatarError = formError();
    const file = h("input", { id: "me-avatar", type: "file", accept: "image/png,image/jpeg,image/gif,image/webp" });
    file.addEventListener("change", async () => {
      const chosen = file.files[0];
      if (!chosen) return;
      avatarError.textContent = "";
      try {
        this.adopt(await this.call("PUT", "/api/users/@me/avatar", chosen));
        toast("Avatar updated", "info");
      } catch (err) {
        avatarError.textContent = describe(err);
      }
    });
    const form = actionForm({
      fields: [h("label", { for: "me-display-name" }, "Display name"), name, h("p", { class: "hint" }, "Shown instead of your username; leave it empty to show the username.")],
      submitText: "Save",
      run: async () => {
        this.adopt(await this.call("PATCH", "/api/users/@me", { display_name: name.value.trim() || null }));
        toast("Profile saved", "info");
      },
    });
    replace(
      this.panel,
      h("h3", null, "Profile"),
      h("div", { class: "profile" }, avatar(me, "lg"), h("div", null, h("strong", null, displayName(me)), h("p", { class: "muted" }, `@${me.username}`))),
      form,
      h("h4", null, "Avatar"),
      h(
        "div",
        { class: "stack" },
        h("label", { for: "me-avatar" }, "Upload an avatar"),
        file,
        h("p", { class: "hint" }, "PNG, JPEG, GIF or WebP; cropped to a square."),
        avatarError,
        me.avatar_url
          ? h("div", { class: "row-end" }, h("button", { class: "btn btn-danger", type: "button", onclick: () => this.removeAvatar(avatarError) }, "Remove avatar"))
          : null,
      ),
    );
  }

  // Your username and email: as Discord asks, with your password (and a code when
  // two-factor sign-in is on), which the server checks and spends; only what differs
  // is sent. A new email logs out your other sessions.
  identity() {
    const me = this.me;
    const form = actionForm({
      label: "Username and email",
      fields: [
        h("label", { for: "me-username" }, "Username"),
        h("input", { id: "me-username", name: "username", value: me.username, required: true, minlength: 2, maxlength: 32, pattern: "[A-Za-z0-9_.]+", autocomplete: "username" }),
        h("label", { for: "me-email" }, "Email"),
        h("input", { id: "me-email", name: "email", type: "email", value: me.email || "", required: true, maxlength: 254, autocomplete: "email" }),
        h("p", { class: "hint" }, "Only you see your email. Changing it logs out your other sessions."),
        h("label", { for: "me-id-password" }, "Current password"),
        h("input", { id: "me-id-password", name: "password", type: "password", required: true, autocomplete: "current-password", maxlength: 256 }),
        h("label", { for: "me-id-code" }, "Two-factor code or recovery code"),
        h("input", { id: "me-id-code", name: "code", autocomplete: "one-time-code", maxlength: 64 }),
        h("p", { class: "hint" }, "Only if two-factor sign-in is on."),
      ],
      submitText: "Save",
      run: async (f) => {
        const data = Object.fromEntries(new FormData(f));
        const body = {};
        const username = String(data.username || "").trim();
        const email = String(data.email || "").trim();
        if (username !== me.username) body.username = username;
        if (email !== me.email) body.email = email;
        if (!("username" in body) && !("email" in body)) throw new Error("Nothing to change: give a new username or email.");
        body.password = data.password;
        const code = String(data.code || "").trim();
        if (code) body.code = code;
        this.adopt(await this.call("PATCH", "/api/users/@me", body));
        toast("email" in body ? "Saved. Your other sessions were logged out." : "Saved", "info");
      },
    });
    replace(this.panel, h("h3", null, "Username and email"), form);
  }

  async removeAvatar(error) {
    try {
      await this.call("DELETE", "/api/users/@me/avatar");
      this.adopt({ ...this.me, avatar_url: null });
    } catch (err) {
      error.textContent = describe(err);
    }
  }

  status() {
    const store = this.app.store;
    const now = store.presences.get(this.me.id) || { status: "online", status_text: this.me.status_text };
    const text = h("input", { id: "me-status-text", maxlength: 128, value: now.status_text || "", placeholder: "What are you up to?" });
    const put = async (body) => {
      store.apply("presence.updated", await this.call("PUT", "/api/users/@me/presence", body));
      toast("Status saved", "info");
      this.render();
    };
    const clear = h("button", { class: "btn", type: "button", onclick: () => put({ status_text: null }).catch((err) => toast(describe(err))) }, "Clear custom status");
    const form = actionForm({
      fields: [
        h("fieldset", { class: "choices" }, h("legend", null, "Status"), STATUSES.map(([value, label]) => h("label", { class: "check" }, h("input", { type: "radio", name: "status", value, checked: now.status === value }), label))),
        h("label", { for: "me-status-text" }, "Custom status"),
        text,
      ],
      submitText: "Save status",
      extra: now.status_text ? clear : null,
      run: (f) => put({ status: new FormData(f).get("status"), status_text: text.value.trim() || null }),
    });
    replace(this.panel, h("h3", null, "Status"), form);
  }

  password() {
    const input = (id, text, auto) => [h("label", { for: id }, text), h("input", { id, name: id, type: "password", required: true, autocomplete: auto, maxlength: 256 })];
    const form = actionForm({
      fields: [
        input("pw-current", "Current password", "current-password"),
        input("pw-new", "New password", "new-password"),
        input("pw-again", "New password again", "new-password"),
        h("p", { class: "hint" }, "8 to 256 characters. Changing it logs out your other sessions."),
        h("label", { for: "pw-code" }, "Two-factor code or recovery code"),
        h("input", { id: "pw-code", name: "pw-code", autocomplete: "one-time-code", maxlength: 64 }),
        h("p", { class: "hint" }, "Only if two-factor sign-in is on."),
      ],
      submitText: "Change password",
      run: async (f) => {
        const data = Object.fromEntries(new FormData(f));
        if (data["pw-new"] !== data["pw-again"]) throw new Error("The new password and its repetition differ.");
        const code = data["pw-code"].trim();
        await this.call("POST", "/api/users/@me/password", { current_password: data["pw-current"], new_password: data["pw-new"], ...(code ? { code } : {}) });
        f.reset();
        toast("Password changed. Your other sessions were logged out.", "info");
      },
    });
    replace(this.panel, h("h3", null, "Password"), form);
  }

  // Your password (and a code with two-factor sign-in on), then a confirmation. The
  // server refuses while you own a server, and says so beside the form.
  deleteAccount() {
    const form = actionForm({
      label: "Delete account",
      danger: true,
      fields: [
        h("p", null, "Your messages stay, shown as from a deleted user. You leave every server and group, your friends, requests and blocks go, and nobody can log in to the account again. Transfer or delete the servers you own first."),
        h("label", { for: "del-password" }, "Password"),
        h("input", { id: "del-password", name: "password", type: "password", required: true, autocomplete: "current-password", maxlength: 256 }),
        h("label", { for: "del-code" }, "Two-factor code or recovery code"),
        h("input", { id: "del-code", name: "code", autocomplete: "one-time-code", maxlength: 64 }),
        h("p", { class: "hint" }, "Only if two-factor sign-in is on."),
      ],
      submitText: "Delete account",
      run: async (f) => {
        const data = Object.fromEntries(new FormData(f));
        const sure = await confirmDialog("Delete your account?", "This cannot be undone.", "Delete account");
        if (!sure) return;
        const code = String(data.code || "").trim();
        // (Its own session.revoked may arrive before the answer: it ends this, as deleted.)
        this.app.deleting = true;
        try {
          await this.call("POST", "/api/users/@me/delete", code ? { password: data.password, code } : { password: data.password });
        } finally {
          this.app.deleting = false;
        }
        this.app.end("deleted");
      },
    });
    replace(this.panel, h("h3", null, "Delete account"), form);
  }

  twoFactor() {
    const current = () => this.tab === "two-factor";
    twoFactorTab(this.app, this.panel, () => current() && this.render(), current);
  }

  async sessions() {
    replace(this.panel, h("h3", null, "Sessions"), h("p", { class: "muted" }, "Loading…"));
    let list;
    try {
      list = await this.call("GET", "/api/users/@me/sessions");
    } catch (err) {
      return toast(describe(err));
    }
    if (this.tab !== "sessions") return undefined;
    const others = list.filter((s) => !s.current);
    // One session by its id; all the others (null) in one request, so that one started
    // since the list was read goes too.
    const revoke = async (id) => {
      try {
        await this.call("DELETE", id ? `/api/users/@me/sessions/${id}` : "/api/users/@me/sessions");
        toast(id ? "Session logged out" : "Logged out everywhere else", "info");
      } catch (err) {
        toast(describe(err));
      }
      this.render();
    };
    replace(
      this.panel,
      h("h3", null, "Sessions"),
      h("p", { class: "muted" }, "Where you are logged in. Log out any you do not recognise."),
      h("ul", { class: "settings-list", "aria-label": "Sessions" }, list.map((s) =>
        h(
          "li",
          null,
          h("div", { class: "session-meta" }, h("strong", null, agentName(s.user_agent)), s.current ? h("span", { class: "pill pill-on" }, "This device") : null, h("span", { class: "muted" }, `${s.ip || "unknown address"} · last active ${fmtFull(s.last_used_at)}`)),
          s.current ? null : h("button", { class: "btn btn-small btn-danger", type: "button", "aria-label": `Log out ${agentName(s.user_agent)}, last active ${fmtFull(s.last_used_at)}`, onclick: () => revoke(s.id) }, "Log out"),
        ),
      )),
      others.length
        ? h("div", { class: "row-end" }, h("button", { class: "btn btn-danger", type: "button", onclick: async () => {
            if (await confirmDialog("Log out everywhere else", `Log out your ${others.length} other session${others.length === 1 ? "" : "s"}?`, "Log out")) revoke(null);
          } }, "Log out everywhere else"))
        : h("p", { class: "muted" }, "You are logged in nowhere else."),
    );
    return undefined;
  }

  async privacy() {
    const store = this.app.store;
    try {
      if (!store.privacy) store.privacy = await this.call("GET", "/api/users/@me/privacy");
    } catch (err) {
      return toast(describe(err));
    }
    const policy = store.privacy.direct_messages;
    if (this.tab !== "privacy") return undefined;
    const saved = h("p", { class: "muted", role: "status" });
    const choose = async (value) => {
      saved.textContent = "";
      try {
        const out = await this.call("PUT", "/api/users/@me/privacy", { direct_messages: value });
        store.privacy = out;
        saved.textContent = out.direct_messages === "friends" ? "Saved: only your friends can message you." : "Saved: anyone can message you.";
      } catch (err) {
        saved.textContent = describe(err);
      }
    };
    const option = (value, label) =>
      h("label", { class: "check" }, h("input", { type: "radio", name: "dm-policy", value, checked: policy === value, onchange: () => choose(value) }), label);
    replace(
      this.panel,
      h("h3", null, "Privacy"),
      h(
        "fieldset",
        { class: "choices" },
        h("legend", null, "Who can send you direct messages"),
        option("everyone", "Everyone"),
        option("friends", "Only my friends"),
      ),
      h("p", { class: "hint" }, "Others see only that you take no messages from them, never why. Only friends can ever add you to a group."),
      saved,
    );
    return undefined;
  }
}

// "Firefox on Linux", from a user agent (the full string is kept as it is nowhere else).
function agentName(ua) {
  if (!ua) return "Unknown device";
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrom(e|ium)\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : null;
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Windows/.test(ua) ? "Windows" : /Mac OS X/.test(ua) ? "macOS" : /Linux/.test(ua) ? "Linux" : null;
  if (browser) return os ? `${browser} on ${os}` : browser;
  return ua.length > 40 ? `${ua.slice(0, 40)}…` : ua;
}
