// The review view of the demo page: a job's segments with their source and target text,
// a ▶ for each line's original speech and for its dub, editable target lines, and
// "Re-dub changed lines" (PATCH the edited lines, then resume: only those are spoken again).
import { REVIEWABLE } from "./octavia.js";

const $ = (id) => document.getElementById(id);

function clock(seconds) {
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${(seconds - minutes * 60).toFixed(1).padStart(4, "0")}`;
}

export class ReviewView {
  /**
   * @param {() => import("./octavia.js").OctaviaClient} client  a client with the current credentials
   * @param {(job: object) => void} onResumed  called with the job once it is queued again
   */
  constructor(client, onResumed) {
    this.client = client;
    this.onResumed = onResumed;
    this.job = null;
    this.loaded = "";       // which state of which job the table shows
    this.original = new Map(); // index → {source_text, target_text} as loaded
    this.edits = new Map();    // index → {source_text?, target_text?} changed since
    this.segments = [];
    this.media = new Map();    // "source" | "dubbed vN" → a URL the player can load
    this.stopAt = Infinity;
    this.timer = null;
    const player = $("slice-player");
    player.addEventListener("timeupdate", () => {
      if (player.currentTime >= this.stopAt) player.pause();
    });
    player.addEventListener("pause", () => { delete player.dataset.playing; });
    $("redub").addEventListener("click", () => this.resume(true));
    $("resume").addEventListener("click", () => this.resume(false));
  }

  /** Forget the shown job (a new one was submitted). */
  reset() {
    this.job = null;
    this.loaded = "";
    for (const url of this.media.values()) if (url.startsWith("blob:")) URL.revokeObjectURL(url);
    this.media.clear();
    $("review").hidden = true;
  }

  /** Follow a job update: load the segments when it becomes reviewable, lock them while
   *  it runs. */
  async update(job) {
    if (this.job && this.job.job_id !== job.job_id) this.reset();
    this.job = job;
    const reviewable = REVIEWABLE.has(job.status);
    $("resume").hidden = job.status !== "awaiting_review";
    if (!reviewable) {
      this._lock(true);
      if (!$("review").hidden) {
        $("review-state").textContent = `${job.status}: the lines can be edited again once it is done.`;
      }
      return;
    }
    const key = `${job.job_id} ${job.status} ${job.phase} ${job.version}`;
    if (key === this.loaded) return;
    this.loaded = key;
    let body;
    try {
      body = await this.client().segments(job.job_id);
    } catch (error) {
      this._error(`Could not load the segments: ${error.message}`);
      return;
    }
    if (this.loaded !== key) return; // a newer update won
    this._table(body.segments);
    $("review-state").textContent = job.status === "awaiting_review"
      ? `Awaiting review after ${job.phase}: edit lines, then re-dub them (or continue). ` +
        "An edited source line is translated again; an edited target line is voiced as written."
      : `Version ${job.version} is done: edit lines and re-dub them as version ${job.version + 1}.`;
    $("review-error").hidden = true;
    $("review").hidden = false;
    this._lock(!body.editable);
  }

  _table(segments) {
    this.segments = segments;
    this.original = new Map(segments.map((s) => [s.index, {
      source_text: s.source_text, target_text: s.target_text }]));
    this.edits.clear();
    const rows = segments.map((segment) => {
      const row = document.createElement("tr");
      row.dataset.index = String(segment.index);
      const cell = (text, className = "") => {
        const td = document.createElement("td");
        td.textContent = text;
        if (className) td.className = className;
        return td;
      };
      const editor = (field, className, label) => {
        const area = document.createElement("textarea");
        area.className = className;
        area.value = segment[field];
        area.setAttribute("aria-label", `${label} of line ${segment.index}`);
        area.addEventListener("input", () => this._edited(segment.index, field, area.value, row));
        const td = document.createElement("td");
        td.append(area);
        return td;
      };
      const play = cell("", "play");
      play.append(this._button("▶ source", "play-source", `Play line ${segment.index} of the source`,
                               () => this.play("source", segment)),
                  " ",
                  this._button("▶ dub", "play-dub", `Play line ${segment.index} of the dub`,
                               () => this.play("dubbed", segment)));
      row.append(cell(String(segment.index)),
                 cell(`${clock(segment.start_seconds)}–${clock(segment.end_seconds)}`, "time"),
                 editor("source_text", "source", "Source text"),
                 editor("target_text", "target", "Target text"), play);
      return row;
    });
    $("segments").replaceChildren(...rows);
    this._count();
  }

  _button(text, className, label, onClick) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = className;
    button.textContent = text;
    button.setAttribute("aria-label", label);
    button.addEventListener("click", onClick);
    return button;
  }

  _edited(index, field, text, row) {
    const changed = { ...this.edits.get(index) };
    if (text !== this.original.get(index)[field]) changed[field] = text;
    else delete changed[field];
    if (Object.keys(changed).length) this.edits.set(index, changed);
    else this.edits.delete(index);
    row.classList.toggle("edited", this.edits.has(index));
    this._count();
  }

  _count() {
    const n = this.edits.size;
    $("edit-count").textContent = n ? `${n} line${n === 1 ? "" : "s"} changed` : "";
    $("redub").disabled = n === 0 || !REVIEWABLE.has(this.job?.status);
  }

  _lock(locked) {
    for (const area of document.querySelectorAll("#segments textarea")) area.disabled = locked;
    $("redub").disabled = locked || this.edits.size === 0;
    $("resume").disabled = locked;
    for (const button of document.querySelectorAll("#segments .play-dub")) {
      button.disabled = locked || !this._dubbed();
    }
  }

  _error(message) {
    $("review-error").textContent = message;
    $("review-error").hidden = false;
  }

  /** The dub of the current version, once it is done. */
  _dubbed() {
    const job = this.job;
    if (!job || job.status !== "completed") return null;
    return job.artifacts.find((a) => a.name === "dubbed.wav")
      || job.artifacts.find((a) => a.name === job.output_file && a.media_type.startsWith("audio/"))
      || null;
  }

  /** A URL the player can load: a plain URL with the cookie session (the player asks
   *  for ranges), else the file fetched once with the bearer token. */
  async _mediaUrl(kind) {
    const api = this.client();
    const job = this.job;
    const dubbed = kind === "dubbed" ? this._dubbed() : null;
    if (kind === "dubbed" && !dubbed) throw new Error("the dub of this version is not ready");
    const key = kind === "source" ? "source" : `dubbed ${dubbed.name} v${job.version}`;
    if (!this.media.has(key)) {
      let url;
      if (!api.token) {
        url = kind === "source" ? api.sourceUrl(job.job_id)
          : api.artifactUrl(job.job_id, dubbed.name, job.version);
      } else {
        const blob = kind === "source" ? await api.source(job.job_id)
          : await api.artifact(job.job_id, dubbed.name, { version: job.version });
        url = URL.createObjectURL(blob);
      }
      this.media.set(key, url);
    }
    return this.media.get(key);
  }

  /** Play one line of the source or of the dub: seek to its start, pause at its end. */
  async play(kind, segment) {
    const player = $("slice-player");
    try {
      const url = await this._mediaUrl(kind);
      player.pause();
      if (player.getAttribute("src") !== url) {
        player.src = url;
        await new Promise((resolve, reject) => {
          player.addEventListener("loadedmetadata", resolve, { once: true });
          player.addEventListener("error", () => reject(new Error("the media cannot be played")),
                                  { once: true });
        });
      }
      clearTimeout(this.timer);
      this.stopAt = segment.end_seconds;
      player.currentTime = segment.start_seconds;
      player.dataset.slice = `${kind} ${segment.index}`;
      player.dataset.playing = player.dataset.slice;
      await player.play();
      this._stopOnTime(player);
    } catch (error) {
      delete player.dataset.playing;
      this._error(`Could not play line ${segment.index}: ${error.message}`);
    }
  }

  /** Pause at `stopAt`. timeupdate fires only every quarter second or so, so a timer
   * stops it on time; playback can fall behind the wall clock (a range still loading, a
   * busy machine), so when the timer fires early it waits for the rest. */
  _stopOnTime(player) {
    clearTimeout(this.timer);
    if (player.paused) return;
    const left = (this.stopAt - player.currentTime) * 1000;
    if (left <= 0) {
      player.pause();
    } else {
      this.timer = setTimeout(() => this._stopOnTime(player), left);
    }
  }

  /** PATCH the edited lines (when `withEdits`), then resume the job. */
  async resume(withEdits) {
    const job = this.job;
    if (!job) return;
    const api = this.client();
    $("review-error").hidden = true;
    this._lock(true);
    try {
      if (withEdits && this.edits.size) {
        const edits = [...this.edits].map(([index, fields]) => ({ index, ...fields }));
        await api.updateSegments(job.job_id, edits);
        for (const [index, fields] of this.edits) {
          this.original.set(index, { ...this.original.get(index), ...fields });
        }
        this.edits.clear();
        for (const row of document.querySelectorAll("#segments tr.edited")) {
          row.classList.remove("edited");
        }
        this._count();
      }
      const resumed = await api.resume(job.job_id);
      this.loaded = "";
      this.onResumed(resumed);
    } catch (error) {
      this._error(`Re-dub failed: ${error.message}`);
      this._lock(false);
    }
  }
}
