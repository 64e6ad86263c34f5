// Boot: carry on a stored session (a reload), or show the login.

import { STORE, Session, retryDelay } from "./session.js";
import { App } from "./ui/app.js";
import { renderAuth } from "./ui/auth.js";
import { h, replace, toast } from "./dom.js";

const root = document.getElementById("app");
const session = new Session();

function loggedOut(why) {
  if (why === "revoked") toast("Your session ended. Log in again.");
  else if (why === "expired") toast("Your session expired. Log in again.");
  else if (why === "deleted") toast("Your account was deleted.", "info");
  renderAuth(root, session, loggedIn);
}

function loggedIn() {
  const app = new App(root, session, loggedOut);
  session.onEnd = (why) => app.end(why);
  app.start();
}

// A server not reached (or busy: a 5xx, a 429) is tried again with a back-off and
// jitter; any other answer to the refresh ends the stored session (restore says false).
let bootFailures = 0;
async function boot() {
  try {
    if (await session.restore()) loggedIn();
    else renderAuth(root, session, loggedIn);
  } catch (err) {
    bootFailures += 1;
    replace(root, h("main", { class: "auth" }, h("p", { class: "form-error", role: "alert" }, "XFChat cannot be reached. Retrying…")));
    setTimeout(boot, retryDelay(err, bootFailures));
  }
}

// Tabs share the stored session. A login in another tab, as another account or from
// the login form here, is this tab's too: it starts over with it (as Discord's tabs
// do), rather than showing one account and sending with the other's tokens.
session.onSwitch = () => location.reload();
window.addEventListener("storage", (event) => {
  if (event.key !== STORE && event.key !== null) return;
  if (session.switched || (!session.user && session.stored)) location.reload();
});

boot();
