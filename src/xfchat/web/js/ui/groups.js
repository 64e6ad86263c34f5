// Group conversations: start one from your friends (a picker), add people (friends, or
// anyone by username: the server answers CANNOT_ADD_USER for whoever is not a friend,
// said here with their name), remove them (the owner), rename, leave.

import { h, avatar, displayName, dialog, confirmDialog, toast, describe, actionForm } from "../dom.js";

const MAX_PEOPLE = 25; // a group's participants, the owner included (README: Conversations)

// A list of checkboxes, one per friend not in `exclude`; `picked()` gives the ids ticked.
function friendPicker(app, exclude = new Set()) {
  const friends = [...app.store.friends.values()]
    .map((f) => f.user)
    .filter((u) => !exclude.has(u.id))
    .sort((a, b) => displayName(a).localeCompare(displayName(b)));
  const boxes = friends.map((u) => h("input", { type: "checkbox", id: `pick-${u.id}`, value: u.id }));
  const el = friends.length
    ? h(
        "fieldset",
        { class: "picker" },
        h("legend", null, "Friends"),
        h("ul", null, friends.map((u, i) => h("li", null, h("label", { class: "check", for: `pick-${u.id}` }, boxes[i], avatar(u, "xs"), ` ${displayName(u)}`, h("span", { class: "muted" }, ` @${u.username}`))))),
      )
    : h("p", { class: "muted" }, "None of your friends can be added here. Add friends on the Friends page first.");
  return { el, picked: () => boxes.filter((b) => b.checked).map((b) => b.value) };
}

export function createGroupDialog(app) {
  const picker = friendPicker(app);
  const name = h("input", { id: "group-name", maxlength: 100, placeholder: "Optional" });
  const d = dialog(
    "New group",
    actionForm({
      fields: [h("p", { class: "muted" }, `Start a conversation with up to ${MAX_PEOPLE - 1} of your friends.`), picker.el, h("label", { for: "group-name" }, "Group name"), name],
      submitText: "Create group",
      run: async () => {
        const ids = picker.picked();
        if (!ids.length) throw new Error("Pick at least one friend.");
        const conv = await app.session.call("POST", "/api/conversations", { kind: "group", participant_ids: ids, ...(name.value.trim() ? { name: name.value.trim() } : {}) });
        d.close();
        app.showConversation(conv);
      },
    }),
  );
}

// Resolve a typed username to a user (the search matches prefixes; take the exact one).
async function findUser(app, username) {
  const q = username.replace(/^@/, "").trim();
  const found = await app.session.call("GET", `/api/users/search?q=${encodeURIComponent(q)}&limit=25`);
  const user = found.find((u) => u.username.toLowerCase() === q.toLowerCase());
  if (!user) throw new Error(`Nobody is called ${q}.`);
  app.store.remember(user);
  return user;
}

// Conversation routes answer the conversation as it now is: keep it, and redraw.
function adopt(app, conv) {
  app.store.addConversation(conv);
  app.store.emit("conversations", `channel-meta:${conv.id}`);
}

export function addPeopleDialog(app, conv) {
  const picker = friendPicker(app, new Set(conv.participant_ids));
  const byName = h("input", { id: "add-username", maxlength: 32, autocomplete: "off", placeholder: "Username" });
  const add = async () => {
    const people = picker.picked().map((id) => app.store.user(id));
    if (byName.value.trim()) people.push(await findUser(app, byName.value));
    if (!people.length) throw new Error("Pick a friend, or type a username.");
    for (const u of people) {
      try {
        adopt(app, await app.session.call("PUT", `/api/conversations/${conv.id}/participants/${u.id}`));
      } catch (err) {
        throw new Error(`${displayName(u)} cannot be added. ${describe(err)}`);
      }
    }
    d.close();
  };
  const d = dialog(
    `Add people to ${app.channelTitle(conv.id)}`,
    actionForm({
      fields: [picker.el, h("label", { for: "add-username" }, "Or add someone by username"), byName, h("p", { class: "hint" }, "Only your friends can be added: people choose who may put them in a group.")],
      submitText: "Add",
      run: add,
    }),
  );
}

export function renameGroupDialog(app, conv) {
  const name = h("input", { id: "rename-group", maxlength: 100, value: conv.name || "", placeholder: "No name: the members' names" });
  const d = dialog(
    "Rename group",
    actionForm({
      fields: [h("label", { for: "rename-group" }, "Group name"), name],
      submitText: "Save",
      run: async () => {
        adopt(app, await app.session.call("PATCH", `/api/conversations/${conv.id}`, { name: name.value.trim() || null }));
        d.close();
      },
    }),
  );
}

export async function removeParticipant(app, conv, user) {
  if (!(await confirmDialog("Remove from group", `Remove ${displayName(user)} from ${app.channelTitle(conv.id)}?`, "Remove"))) return;
  try {
    await app.session.call("DELETE", `/api/conversations/${conv.id}/participants/${user.id}`);
  } catch (err) {
    toast(describe(err));
  }
}

export async function leaveGroup(app, conv) {
  if (!(await confirmDialog("Leave group", `Leave ${app.channelTitle(conv.id)}? You can come back only if someone adds you.`, "Leave"))) return;
  try {
    await app.session.call("DELETE", `/api/conversations/${conv.id}/participants/@me`);
  } catch (err) {
    toast(describe(err));
  }
}

// The right side of a group: its people (the owner marked), and what you may do there.
export function groupActions(app, conv) {
  const owner = conv.owner_id === app.store.me.id;
  return h(
    "div",
    { class: "group-actions" },
    owner ? h("button", { class: "btn btn-small btn-primary", type: "button", "data-key": "add", onclick: () => addPeopleDialog(app, conv) }, "Add people") : null,
    h("button", { class: "btn btn-small", type: "button", "data-key": "rename", onclick: () => renameGroupDialog(app, conv) }, "Rename"),
    h("button", { class: "btn btn-small btn-danger", type: "button", "data-key": "leave", onclick: () => leaveGroup(app, conv) }, "Leave group"),
  );
}

export function participantExtras(app, conv, user) {
  const me = app.store.me.id;
  return [
    user.id === conv.owner_id ? h("span", { class: "owner-mark", title: "Group owner", "aria-label": "group owner" }, "👑") : null,
    conv.owner_id === me && user.id !== me
      ? h("button", { class: "icon-btn", type: "button", "aria-label": `Remove ${displayName(user)} from the group`, title: "Remove from the group", onclick: () => removeParticipant(app, conv, user) }, "✕")
      : null,
  ];
}
