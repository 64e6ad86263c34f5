// The friends page: friends, requests in and out (accept, decline, cancel), blocks,
// adding a friend, and starting a direct message.

import { h, replace, morph, avatar, displayName, toast, describe, confirmDialog, waitText } from "../dom.js";
import { customStatus } from "./members.js";

const TABS = [
  ["all", "All"],
  ["pending", "Pending"],
  ["blocked", "Blocked"],
  ["add", "Add friend"],
];

export class FriendsView {
  constructor(app) {
    this.app = app;
    this.tab = "all";
    this.unsub = null;
  }

  mount(container) {
    this.root = h("section", { class: "friends", "aria-label": "Friends" });
    replace(container, this.root);
    this.unsub = app_on(this.app.store, ["friends", "presence", "all"], () => this.render());
    this.render();
  }

  destroy() {
    if (this.unsub) this.unsub();
  }

  async act(fn, done) {
    try {
      await fn();
      if (done) toast(done, "info");
    } catch (err) {
      toast(describe(err));
    }
  }

  row(key, user, ...buttons) {
    const p = this.app.store.presences.get(user.id);
    return h(
      "li",
      { class: "friend-row", "data-key": key },
      avatar(user),
      h("span", { class: "friend-names" }, h("strong", null, displayName(user)), h("span", { class: "muted" }, `@${user.username}${p && p.status !== "offline" ? ` · ${p.status}` : ""}`), customStatus(this.app.store, user.id) ? h("span", { class: "member-status-text" }, customStatus(this.app.store, user.id)) : null),
      h("span", { class: "row-actions" }, buttons),
    );
  }

  button(label, fn, kind = "") {
    return h("button", { class: `btn btn-small ${kind}`, type: "button", onclick: fn }, label);
  }

  render() {
    const { store, session } = this.app;
    const call = (method, path, body) => session.call(method, path, body);
    // WAI-ARIA's tabs, as the settings' (dom.js tabbedDialog): one stop for Tab, the
    // selected tab; the arrow keys, Home and End move among them and show the one they reach.
    const pick = (key) => {
      this.tab = key;
      this.render();
      this.root.querySelector(`#friends-tab-${key}`)?.focus();
    };
    const onKey = (ev) => {
      const at = TABS.findIndex(([key]) => key === this.tab);
      const n = TABS.length;
      const to = { ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1, Home: 0, End: n - 1 }[ev.key];
      if (to === undefined) return;
      ev.preventDefault();
      pick(TABS[(to + n) % n][0]);
    };
    const tabs = h(
      "div",
      { class: "tabs", role: "tablist", "aria-label": "Friends", onkeydown: onKey },
      TABS.map(([key, label]) => {
        const count = key === "pending" ? store.incoming.size : 0;
        const on = this.tab === key;
        return h(
          "button",
          { class: ["tab", on && "active"], role: "tab", type: "button", id: `friends-tab-${key}`, "aria-selected": on ? "true" : "false", "aria-controls": "friends-panel", tabindex: on ? "0" : "-1", onclick: () => pick(key) },
          label,
          count ? h("span", { class: "badge" }, String(count)) : null,
        );
      }),
    );
    let body;
    if (this.tab === "all") {
      const friends = [...store.friends.values()].sort((a, b) => displayName(a.user).localeCompare(displayName(b.user)));
      body = friends.length
        ? h("ul", { class: "friend-list", "aria-label": "Friends" }, friends.map(({ user }) =>
            this.row(
              user.id,
              user,
              this.button("Message", () => this.app.openDirect(user.id), "btn-primary"),
              this.button("Remove", async () => {
                if (await confirmDialog("Remove friend", `Remove ${displayName(user)} from your friends?`, "Remove")) this.act(() => call("DELETE", `/api/users/@me/friends/${user.id}`));
              }),
              this.button("Block", () => this.act(() => call("PUT", `/api/users/@me/blocks/${user.id}`), `${displayName(user)} blocked`), "btn-danger"),
            ),
          ))
        : h("p", { class: "empty-note" }, "No friends yet. Add one by username.");
    } else if (this.tab === "pending") {
      const incoming = [...store.incoming.values()];
      const outgoing = [...store.outgoing.values()];
      body = [
        h("h2", { class: "category-name" }, `Incoming — ${incoming.length}`),
        h("ul", { class: "friend-list", "aria-label": "Incoming requests" }, incoming.map((r) =>
          this.row(
            r.id,
            r.user,
            this.button("Accept", () => this.act(() => call("POST", `/api/users/@me/friend-requests/${r.id}/accept`), "Friend added"), "btn-primary"),
            this.button("Decline", () => this.act(() => call("POST", `/api/users/@me/friend-requests/${r.id}/decline`))),
            this.button("Block", () => this.act(() => call("PUT", `/api/users/@me/blocks/${r.user.id}`)), "btn-danger"),
          ),
        )),
        h("h2", { class: "category-name" }, `Outgoing — ${outgoing.length}`),
        h("ul", { class: "friend-list", "aria-label": "Outgoing requests" }, outgoing.map((r) =>
          this.row(r.id, r.user, this.button("Cancel", () => this.act(() => call("DELETE", `/api/users/@me/friend-requests/${r.id}`)))),
        )),
      ];
    } else if (this.tab === "blocked") {
      const blocks = [...store.blocks.values()];
      body = blocks.length
        ? h("ul", { class: "friend-list", "aria-label": "Blocked" }, blocks.map((u) => this.row(u.id, u, this.button("Unblock", () => this.act(() => call("DELETE", `/api/users/@me/blocks/${u.id}`))))))
        : h("p", { class: "empty-note" }, "You have blocked nobody.");
    } else {
      // (what is typed is kept in this.draft: a redraw, at every friend's presence,
      // draws the box with it)
      const input = h("input", { id: "add-friend", name: "username", autocomplete: "off", required: true, maxlength: 32, placeholder: "Username", value: this.draft || "", oninput: (ev) => (this.draft = ev.currentTarget.value) });
      body = h(
        "form",
        {
          class: "add-friend",
          onsubmit: (ev) => {
            ev.preventDefault();
            const box = ev.currentTarget.elements.username;
            const username = box.value.trim();
            if (!username) {
              box.value = ""; // (spaces only: the box says a name is needed)
              box.reportValidity();
              return;
            }
            this.act(async () => {
              try {
                await call("POST", "/api/users/@me/friend-requests", { username });
              } catch (err) {
                // (said with their name: the server's own words are for developers)
                if (err.code === "FRIEND_REQUEST_DECLINED") throw new Error(`${username} declined your last friend request. You can ask again in ${waitText(err)}.`);
                throw err;
              }
              this.draft = box.value = "";
            }, `Friend request sent to ${username}`);
          },
        },
        h("label", { for: "add-friend" }, "Add a friend by their username"),
        h("div", { class: "composer-row" }, input, h("button", { class: "btn btn-primary", type: "submit" }, "Send request")),
      );
    }
    morph(this.root, h("header", { class: "main-head" }, h("h1", { class: "main-title", tabindex: "-1" }, "Friends"), tabs), h("div", { class: "friends-body", id: "friends-panel", role: "tabpanel", "aria-labelledby": `friends-tab-${this.tab}` }, body));
  }
}

function app_on(store, topics, fn) {
  const offs = topics.map((t) => store.on(t, fn));
  return () => offs.forEach((off) => off());
}
