import { h, toast, describe } from "./dom.js";

const FAILED_MS = 20_000; // a file that could not be fetched is shown broken this long

// Attachments need the token, so they are fetched and shown as blob: URLs (kept for the
// page's life, one per file).
export class Blobs {
  constructor(session) {
    this.session = session;
    this.urls = new Map(); // path -> the promise of its blob: URL, then the URL once made
    this.failed = new Map(); // path -> when its fetch failed (tried again after FAILED_MS)
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
    this.failed.clear();
  }

  // An image already fetched is shown at once, one that failed a moment ago is shown
  // broken at once (a message drawn again keeps its picture, or its broken mark, instead
  // of blinking: ui/chat.js patches the old drawing with the new one). What a fetch
  // brings goes to every image of the page waiting for that file (data-blob), the drawing
  // kept by such a patch included, not only to the element it was asked for.
  show(path, img) {
    img.dataset.blob = path;
    const made = this.urls.get(path);
    const failed = this.failed.get(path);
    if (typeof made === "string") img.src = made;
    else if (failed !== undefined && Date.now() - failed < FAILED_MS) img.classList.add("broken");
    else {
      const waiting = () => [img, ...[...document.images].filter((i) => i !== img && i.dataset.blob === path && !i.getAttribute("src"))];
      this.url(path).then(
        (u) => {
          this.failed.delete(path);
          for (const i of waiting()) {
            i.classList.remove("broken");
            i.src = u;
          }
        },
        () => {
          this.failed.set(path, Date.now());
          for (const i of waiting()) i.classList.add("broken");
        },
      );
    }
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
