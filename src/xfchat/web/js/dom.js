// Building the page. Everything that comes from the server (messages, names, file
// names, topics) becomes text nodes: h() never parses markup, and no module of the
// client hands a string to an HTML parser (tests/api/test_web.py checks the sources).

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) {
        // Only a function: a string here would be an inline handler, script from text,
        // so it is left out.
        if (typeof value === "function") listen(el, key.slice(2).toLowerCase(), value);
      } else if ((key === "href" || key === "src") && !safeUrl(value)) {
        // A javascript: (or data:, vbscript:...) URL is script from text: left out.
        continue;
      } else if (key === "class") {
        el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
      } else if (key === "style") {
        // Through the CSSOM: a style attribute would be inline style, which the CSP refuses.
        for (const decl of String(value).split(";")) {
          const at = decl.indexOf(":");
          if (at > 0) el.style.setProperty(decl.slice(0, at).trim(), decl.slice(at + 1).trim());
        }
      } else if (key === "dataset") {
        Object.assign(el.dataset, value);
      } else if (key === "value" || key === "checked" || key === "selected" || key === "disabled") {
        el[key] = value;
      } else {
        el.setAttribute(key, value === true ? "" : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

// http(s), blob: (files the page fetched), and URLs relative to this origin; no other
// scheme (javascript:, data:, vbscript:, ...).
function safeUrl(value) {
  const text = String(value);
  try {
    const url = new URL(text, location.href);
    return url.protocol === "http:" || url.protocol === "https:" || url.protocol === "blob:";
  } catch {
    return false;
  }
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Make `nodes` the children of `parent`, in order, moving as little as it can: what is
// no longer drawn goes first, then each node is put in its place only if it is not
// there already (a list redrawn with its old elements, plus new ones at either end,
// moves none of the old). Kept elements keep what happened to them: a press, the focus,
// text being typed, an image that has loaded.
export function place(parent, nodes) {
  const wanted = new Set(nodes);
  for (const old of [...parent.childNodes]) if (!wanted.has(old)) old.remove();
  let at = parent.firstChild;
  for (const node of nodes) {
    if (node === at) at = at.nextSibling;
    else parent.insertBefore(node, at);
  }
  return parent;
}

// An element's handlers from h(): one map per element, read by one listener per event
// type, so that morph() can give a kept element the handlers of the one drawn in its place.
const HANDLERS = new WeakMap();

function dispatch(ev) {
  const on = HANDLERS.get(this);
  const fn = on && on[ev.type];
  if (fn) fn.call(this, ev);
}

function listen(el, type, fn) {
  let on = HANDLERS.get(el);
  if (!on) HANDLERS.set(el, (on = Object.create(null)));
  on[type] = fn;
  el.addEventListener(type, dispatch); // (the same listener twice is one)
}

// replace(), keeping every element that is drawn again the same (same tag, same link):
// the parts of the page redrawn on every event (the server rail, the channel list, the
// members) change in place, so a click whose press and release straddle a redraw still
// lands, and focus and hover stay where they were.
export function morph(el, ...children) {
  const drawn = document.createDocumentFragment();
  append(drawn, children);
  patchChildren(el, [...drawn.childNodes]);
  return el;
}

// Children with a data-key are matched by it, not by where they stand: the keyed ones no
// longer drawn go first, and a kept one that a new one comes before stays (the new one
// is put before it), so a press on a reaction survives one before it going or coming.
const keyOf = (node) => (node.nodeType === Node.ELEMENT_NODE ? node.getAttribute("data-key") : null);

function patchChildren(parent, nodes) {
  const keys = new Set(nodes.map(keyOf).filter((k) => k !== null));
  for (const old of [...parent.childNodes]) {
    const key = keyOf(old);
    if (key !== null && !keys.has(key)) old.remove();
  }
  let at = parent.firstChild;
  for (const node of nodes) {
    if (!at) parent.appendChild(node);
    else if (sameKind(at, node)) {
      patch(at, node);
      at = at.nextSibling;
    } else if (keys.has(keyOf(at))) parent.insertBefore(node, at);
    else {
      const next = at.nextSibling;
      parent.replaceChild(node, at);
      at = next;
    }
  }
  while (at) {
    const next = at.nextSibling;
    at.remove();
    at = next;
  }
}

// Kept only as the same control: a link to the same place, a button of the same action
// (its label, or a data-key where neither says whom it is for, as a member's row), so a
// press or the focus never moves to a neighbour that a redraw put in its place.
const IDENTITY = ["href", "type", "id", "aria-label", "title", "data-key"];

// A data-key, where one is given, says whom or what the control is for on its own (a
// member's row whose status changed, a reaction whose count did): then it alone decides.
function sameKind(a, b) {
  if (a.nodeType !== b.nodeType || a.nodeName !== b.nodeName) return false;
  if (a.nodeType !== Node.ELEMENT_NODE) return true;
  if (a.hasAttribute("data-key") || b.hasAttribute("data-key")) return a.getAttribute("data-key") === b.getAttribute("data-key");
  return IDENTITY.every((name) => a.getAttribute(name) === b.getAttribute(name));
}

// `old` made to look and act as `node`, drawn in its place, if it is the same kind of
// element (see sameKind); returns the one to show.
export function repaint(old, node) {
  if (!sameKind(old, node)) return node;
  patch(old, node);
  return old;
}

function patch(old, node) {
  if (old.nodeType !== Node.ELEMENT_NODE) {
    if (old.data !== node.data) old.data = node.data;
    return;
  }
  for (const name of old.getAttributeNames()) if (!node.hasAttribute(name)) old.removeAttribute(name);
  for (const name of node.getAttributeNames()) {
    if (name === "style") {
      // Through the CSSOM, as h() sets it (the CSP refuses a style attribute).
      if (old.style.cssText !== node.style.cssText) old.style.cssText = node.style.cssText;
    } else if (old.getAttribute(name) !== node.getAttribute(name)) {
      old.setAttribute(name, node.getAttribute(name));
    }
  }
  for (const prop of ["disabled", "checked", "selected"]) if (prop in node && old[prop] !== node[prop]) old[prop] = node[prop];
  if (node instanceof HTMLInputElement && old !== document.activeElement && old.value !== node.value) old.value = node.value;
  const on = HANDLERS.get(node);
  if (on) for (const type of Object.keys(on)) old.addEventListener(type, dispatch);
  HANDLERS.set(old, on || Object.create(null));
  patchChildren(old, [...node.childNodes]);
}

// A name among other text (an author, a mention, a member): on one line (a control
// character, such as a line break, shows as a space: names stored before the server
// refused them) in a <bdi>, so that its bidi controls and right-to-left letters reorder
// nothing around it.
export const oneLine = (text) => String(text).replace(/[\p{Cc}\u2028\u2029]+/gu, " ");
export const nameEl = (name) => h("bdi", null, oneLine(name));
// The same in plain text (a tooltip): between FIRST STRONG ISOLATE and POP DIRECTIONAL
// ISOLATE, which end whatever the name leaves open.
export const isolated = (name) => `\u2068${oneLine(name)}\u2069`;

export function displayName(user) {
  if (!user) return "Unknown";
  return user.display_name || user.username || "Unknown";
}

export function initials(name) {
  const parts = String(name).trim().split(/\s+/).filter(Boolean);
  const letters = parts.slice(0, 2).map((p) => Array.from(p)[0] || "");
  return letters.join("").toUpperCase() || "?";
}

// Only images this server stores are shown; an external avatar URL would be a tracking
// pixel (and the CSP refuses it anyway).
export function avatar(user, size = "md") {
  const name = displayName(user);
  const url = user && user.avatar_url;
  if (url && /^\/api\/media\/[A-Za-z0-9_-]+$/.test(url)) {
    return h("img", { class: `avatar avatar-${size}`, src: url, alt: "" });
  }
  return h(
    "span",
    { class: `avatar avatar-${size}`, style: `--hue:${hue(user ? user.id : name)}`, "aria-hidden": "true" },
    initials(name),
  );
}

function hue(key) {
  let n = 2166136261; // FNV-1a: ids that differ in one digit still get far-apart hues
  for (const ch of String(key)) n = Math.imul(n ^ ch.charCodeAt(0), 16777619) >>> 0;
  return n % 360;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

export const fmtTime = (iso) => timeFmt.format(new Date(iso));
export const fmtFull = (iso) => fullFmt.format(new Date(iso));
export function fmtDay(iso) {
  const d = new Date(iso);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86400000);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return dayFmt.format(d);
}
export const dayKey = (iso) => new Date(iso).toDateString();

// A number of seconds in words: "30 seconds", "1 minute", "6 hours".
export function duration(seconds) {
  const [n, unit] = seconds % 3600 === 0 ? [seconds / 3600, "hour"] : seconds % 60 === 0 ? [seconds / 60, "minute"] : [seconds, "second"];
  return `${n} ${unit}${n === 1 ? "" : "s"}`;
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function colorOf(value) {
  return value ? `#${Number(value).toString(16).padStart(6, "0")}` : null;
}

function luminance(rgb) {
  const [r, g, b] = rgb.map((c) => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

// The lightest backgrounds a role's colour is drawn on, as text: a name (an author, a
// member) on a message that mentions you (var(--mention-bg) over var(--bg)), the
// lightest of them (a message's, a hovered or highlighted one's, the member list's and
// its hovered row's); a role's mention on its own tint (.mention) over that message.
export const ON_NAME = [69, 63, 53];
export const ON_MENTION = [75, 74, 110];

// A role's colour as text on the dark background `on`: lightened just enough to stay
// readable (WCAG AA, 4.5:1), whatever colour a server picked. (Measured on the member
// list's background alone, it was 4.3-4.4:1 for common colours on a message, under 4 on
// a hovered member.)
export function readableColor(value, on = ON_NAME) {
  if (!value) return null;
  let rgb = [(value >> 16) & 255, (value >> 8) & 255, value & 255];
  const bg = luminance(on);
  for (let i = 0; i < 20 && (luminance(rgb) + 0.05) / (bg + 0.05) < 4.6; i += 1) {
    rgb = rgb.map((c) => Math.round(c + (255 - c) * 0.15));
  }
  return `rgb(${rgb.join(",")})`;
}

// What a refusal means, said for a person (the API's own words are for developers).
const PLAIN = {
  CANNOT_MESSAGE_USER: "They do not take direct messages from you.",
  USER_DELETED: "That account was deleted.",
  OWNS_SERVERS: "You own a server: transfer it to someone or delete it first.",
  CANNOT_ADD_USER: "You can add only your friends, and only people who may be in a conversation with everyone in it.",
  MEMBER_NOT_FOUND: "They are not a member of this server now.",
  WRONG_TWO_FACTOR_CODE: "That code is not right. Wait for your app's next code and try that (check your phone's clock if none works).",
};

// A short message for the person, from an API error or anything thrown.
export function describe(err) {
  if (err && err.code === "RATE_LIMITED") return `Too many tries. Wait ${waitText(err)} and try again.`;
  // (the server's words: "declined your request lately: you may ask again in 24 hour(s)")
  if (err && err.code === "FRIEND_REQUEST_DECLINED") return `They declined your last friend request. You can ask again in ${waitText(err)}.`;
  if (err && err.code === "MISSING_PERMISSIONS" && err.body && typeof err.body.missing === "string" && err.body.missing) {
    // (the API names the bits, BAN_MEMBERS: said as the settings show them)
    const names = err.body.missing.split(",").map((n) => n.trim().toLowerCase().replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase()));
    return `You need the ${names.join(", ")} permission${names.length === 1 ? "" : "s"} for that.`;
  }
  if (err && err.code) return PLAIN[err.code] || err.message || err.code;
  // (fetch's own failure, "Failed to fetch" in Chromium: no answer came)
  if (err instanceof TypeError) return "XFChat could not be reached. Check your connection and try again.";
  return err && err.message ? err.message : String(err);
}

// How long a 429 asks to wait, in words.
export function waitText(err) {
  const s = Math.max(1, Math.ceil(Number(err && err.body && err.body.retry_after) || 60));
  if (s < 120) return `${s} seconds`;
  return s < 2 * 3600 ? `${Math.ceil(s / 60)} minutes` : `${Math.ceil(s / 3600)} hours`;
}

// A button shut while what it started runs (pressed again, it would send twice). Not
// `disabled`: a disabled button loses the focus (Chromium puts it on the page), and a
// keyboard user who pressed it was sent back to the top of the page, or of the dialog;
// aria-disabled says the same to a screen reader and leaves the focus where it is. Its
// handler asks held() and does nothing while it is.
export function hold(button, on) {
  if (on) button.setAttribute("aria-disabled", "true");
  else button.removeAttribute("aria-disabled");
}
export const held = (button) => button.getAttribute("aria-disabled") === "true";

// A form's submit: its button held while `fn` runs (a submit meanwhile is ignored), and
// a failure said in `error` (an alert next to the form, not a toast that vanishes).
export async function submitting(form, error, fn) {
  const buttons = [...form.querySelectorAll("button[type=submit]")];
  if (buttons.some(held)) return undefined;
  buttons.forEach((b) => hold(b, true));
  error.textContent = "";
  try {
    return await fn();
  } catch (err) {
    error.textContent = describe(err);
    return undefined;
  } finally {
    buttons.forEach((b) => hold(b, false));
  }
}

// The focus, once `container` was drawn anew under it, on what was drawn in place of
// `old` (the one control of the same id, kind and name: a row's "Log out" among others is
// no one's in particular), else on the container: never on the page (or the top of a
// dialog) for the next Tab to start from.
export function focusLike(container, old) {
  const name = (el) => `${el.tagName}|${el.id}|${el.getAttribute("aria-label") || el.getAttribute("name") || el.textContent.trim()}`;
  const want = name(old);
  const same = [...container.querySelectorAll("a, button, input, select, textarea")].filter((el) => name(el) === want);
  (same.length === 1 ? same[0] : container).focus({ preventScroll: true });
}

export const formError = () => h("p", { class: "form-error", role: "alert" });

// A form of `fields` whose submit runs `run(form)`; what it throws is said in an alert
// above the submit button (and `extra` buttons beside it).
export function actionForm({ label, fields, submitText, run, danger = false, extra = null }) {
  const error = formError();
  const form = h(
    "form",
    {
      class: "stack",
      "aria-label": label,
      onsubmit: (ev) => {
        ev.preventDefault();
        submitting(form, error, () => run(form));
      },
    },
    fields,
    error,
    h("div", { class: "row-end" }, extra, h("button", { class: danger ? "btn btn-danger" : "btn btn-primary", type: "submit" }, submitText)),
  );
  return form;
}

let toastBox = null;

// Toasts live inside the topmost open dialog, if any: a modal puts the rest of the page
// under its backdrop (and makes it inert), where a toast would be dimmed and unread.
function rehomeToasts() {
  if (!toastBox) return;
  const dialogs = document.querySelectorAll("dialog[open]");
  const host = dialogs.length ? dialogs[dialogs.length - 1] : document.body;
  if (toastBox.parentNode !== host) host.appendChild(toastBox);
}

export function toast(text, kind = "error") {
  if (!toastBox) toastBox = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
  rehomeToasts();
  const item = h("div", { class: `toast toast-${kind}` }, text);
  toastBox.appendChild(item);
  setTimeout(() => item.remove(), 5000);
}

// A modal dialog (the native <dialog>: focus stays inside, Escape closes it).
export function dialog(title, body, { onClose, wide } = {}) {
  const closeBtn = h("button", { class: "icon-btn", type: "button", "aria-label": "Close" }, "✕");
  const heading = h("h2", { id: `dlg-${Math.random().toString(36).slice(2)}` }, title);
  const dlg = h(
    "dialog",
    { class: wide ? "modal modal-wide" : "modal", "aria-labelledby": heading.id },
    h("header", { class: "modal-head" }, heading, closeBtn),
    h("div", { class: "modal-body" }, body),
  );
  const close = () => dlg.close();
  closeBtn.addEventListener("click", close);
  dlg.addEventListener("close", () => {
    rehomeToasts(); // (out of this dialog, before it goes)
    dlg.remove();
    if (onClose) onClose();
  });
  document.body.appendChild(dlg);
  dlg.showModal();
  return { dlg, close, body: dlg.querySelector(".modal-body") };
}

// A dialog of tabs down the side (settings): `draw(key, panel)` fills the panel for the
// tab chosen. Tab ids are `tab-<key>`. The tabs are one stop for Tab (the selected one);
// the arrow keys, Home and End move among them and show the one they reach (WAI-ARIA's
// tabs pattern).
export function tabbedDialog(title, tabs, draw, { onClose } = {}) {
  const panel = h("div", { class: "settings-panel", role: "tabpanel", tabindex: "0" });
  const buttons = tabs.map(([key, text]) =>
    h("button", { class: "tab", role: "tab", type: "button", id: `tab-${key}`, "aria-selected": "false", tabindex: "-1", onclick: () => show(key) }, text),
  );
  const show = (key) => {
    for (const b of buttons) {
      const on = b.id === `tab-${key}`;
      b.setAttribute("aria-selected", String(on));
      b.tabIndex = on ? 0 : -1;
    }
    panel.setAttribute("aria-labelledby", `tab-${key}`);
    draw(key, panel);
  };
  const onKey = (ev) => {
    const at = buttons.indexOf(document.activeElement);
    if (at < 0) return;
    const n = buttons.length;
    const to = { ArrowDown: at + 1, ArrowRight: at + 1, ArrowUp: at - 1, ArrowLeft: at - 1, Home: 0, End: n - 1 }[ev.key];
    if (to === undefined) return;
    ev.preventDefault();
    const [key] = tabs[(to + n) % n];
    buttons[(to + n) % n].focus();
    show(key);
  };
  const d = dialog(title, h("div", { class: "settings" }, h("div", { class: "tabs tabs-vertical", role: "tablist", "aria-orientation": "vertical", onkeydown: onKey }, buttons), panel), { wide: true, onClose });
  if (tabs.length) show(tabs[0][0]);
  return d;
}

// (`fields`: more to ask, shown between the question and the buttons, read by the caller
// once it resolves true)
export function confirmDialog(title, text, action = "Delete", fields = null) {
  return new Promise((resolve) => {
    let answer = false;
    const yes = h("button", { class: "btn btn-danger", type: "button" }, action);
    const no = h("button", { class: "btn", type: "button" }, "Cancel");
    const d = dialog(title, [h("p", null, text), fields, h("div", { class: "row-end" }, no, yes)], {
      onClose: () => resolve(answer),
    });
    yes.addEventListener("click", () => {
      answer = true;
      d.close();
    });
    no.addEventListener("click", d.close);
    no.focus();
  });
}
