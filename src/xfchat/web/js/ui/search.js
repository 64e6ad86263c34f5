// Search: the box in the header takes the README's syntax (from:, in:, has:, "phrases",
// -negation, before:/after:/during:); results show their snippet segments as text, the
// hits marked, and jump to the message.

import { h, replace, nameEl, fmtFull, toast, describe } from "../dom.js";

export const SYNTAX_HELP = [
  ["from:alice", "messages by a user"],
  ["mentions:bob", "messages mentioning a user"],
  ["in:#general", "in a channel"],
  ['"exact phrase"', "those words in that order"],
  ["-word", "without it"],
  ["has:link / file / image", "with a link or attachment"],
  ["before: / after: / during:2026-11-01", "by date"],
];

// One box for the app's lifetime: the header re-renders on every store event (a
// presence change, a member update), and a box rebuilt each time would drop a
// half-typed query, its caret and its focus. The scope is read when Enter is pressed.
export function searchBox(app) {
  const input = h("input", { type: "search", class: "search-input", "aria-label": "Search messages", placeholder: "Search", maxlength: 512 });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && input.value.trim()) {
      ev.preventDefault();
      app.showSearch(input.value.trim(), app.searchScope());
    }
  });
  return h("form", { class: "search-form", role: "search", onsubmit: (ev) => ev.preventDefault() }, input);
}

export async function renderSearch(app, query, scope, container) {
  const results = h("ol", { class: "search-results", "aria-label": "Search results" });
  const status = h("p", { class: "muted", role: "status" }, "Searching…");
  const more = h("button", { class: "btn btn-small", type: "button", hidden: true }, "More results");
  replace(
    container,
    h(
      "header",
      { class: "panel-head" },
      h("h2", null, "Search"),
      h("button", { class: "icon-btn", type: "button", "aria-label": "Close search", onclick: () => app.closePanel() }, "✕"),
    ),
    h("p", { class: "search-query" }, h("code", null, query)),
    status,
    results,
    more,
    h("details", { class: "search-help" }, h("summary", null, "Search syntax"), h("dl", null, SYNTAX_HELP.map(([k, v]) => [h("dt", null, h("code", null, k)), h("dd", null, v)]))),
  );
  let cursor = null;
  const load = async () => {
    const params = new URLSearchParams({ q: query, limit: "25", tz: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" });
    if (scope.server_id) params.set("server_id", scope.server_id);
    if (scope.conversation_id) params.set("conversation_id", scope.conversation_id);
    if (cursor) params.set("cursor", cursor);
    try {
      const page = await app.session.call("GET", `/api/search?${params}`);
      status.textContent = `${page.total}${page.total_capped ? "+" : ""} result${page.total === 1 ? "" : "s"}`;
      for (const r of page.results) results.appendChild(resultItem(app, r));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (err) {
      status.textContent = describe(err);
      if (err.code !== "INVALID_QUERY") toast(describe(err));
    }
  };
  more.addEventListener("click", load);
  await load();
}

function resultItem(app, { message: m, snippet }) {
  const where = app.channelTitle(m.channel_id);
  const isServer = app.store.channels.has(m.channel_id);
  return h(
    "li",
    null,
    h(
      "button",
      { class: "search-hit", type: "button", onclick: () => app.openMessage(m.channel_id, m.id) },
      h("span", { class: "search-meta" }, h("strong", null, nameEl(app.store.nameIn(app.store.serverOf(m.channel_id), m.author))), ` in ${isServer ? "#" : ""}`, nameEl(where), " · ", h("time", { datetime: m.created_at }, fmtFull(m.created_at))),
      h("span", { class: "snippet" }, snippet.map((s) => (s.hit ? h("mark", null, s.text) : s.text))),
    ),
  );
}
