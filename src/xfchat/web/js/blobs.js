import { h, toast, describe } from "./dom.js";

// Attachments need the token, so they are fetched and shown as blob: URLs (kept for the
// page's life, one per file).
export class Blobs {
  constructor(session) {
    this.session = session;
    this.urls = new Map();
    this.ready = new Map(); // path -> its blob: URL, once made
  }

  async url(path) {
    if (!this.urls.has(path)) {
      this.urls.set(
        path,
        this.session.blob(path).then((b) => {
          const u = URL.createObjectURL(b);
          this.ready.set(path, u);
          return u;
        }),
      );
    }
    try {
      return await this.urls.get(path);
    } catch (err) {
      this.urls.delete(path);
      throw err;
    }
  }

  // Every URL made, released (at the end of a session: nothing of it stays reachable).
  releaseAll() {
    for (const made of this.urls.values()) made.then((u) => URL.revokeObjectURL(u)).catch(() => {});
    this.urls.clear();
    this.ready.clear();
  }

  // An image already fetched is shown at once (a message drawn again keeps its picture
  // instead of blinking: ui/chat.js patches the old drawing with the new one).
  show(path, img) {
    const ready = this.ready.get(path);
    if (ready) img.src = ready;
    else this.url(path).then((u) => (img.src = u)).catch(() => img.classList.add("broken"));
  }

  async download(a) {
    try {
      const link = h("a", { href: await this.url(a.url), download: a.filename });
      document.body.appendChild(link);
      link.click();
      link.remove();
    } catch (err) {
      toast(describe(err));
    }
  }
}
