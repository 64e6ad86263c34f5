import { h, toast, describe } from "./dom.js";

// Attachments need the token, so they are fetched and shown as blob: URLs (kept for the
// page's life, one per file).
export class Blobs {
  constructor(session) {
    this.session = session;
    this.urls = new Map(); // path -> the promise of its blob: URL, then the URL once made
  }

  async url(path) {
    if (!this.urls.has(path)) {
      const made = this.session.blob(path).then((b) => {
        const u = URL.createObjectURL(b);
        if (this.urls.get(path) === made) this.urls.set(path, u); // (not after releaseAll)
        return u;
      });
      this.urls.set(path, made);
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
    for (const made of this.urls.values()) Promise.resolve(made).then((u) => URL.revokeObjectURL(u)).catch(() => {});
    this.urls.clear();
  }

  // An image already fetched is shown at once (a message drawn again keeps its picture
  // instead of blinking: ui/chat.js patches the old drawing with the new one).
  show(path, img) {
    const made = this.urls.get(path);
    if (typeof made === "string") img.src = made;
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
