// Octavia browser client: submit dubbing jobs and follow them live.
//
// Dependency-free ES module; copy it into your frontend. It talks to the Octavia bridge:
//   const client = new OctaviaClient({ token });          // or {} with the cookie session
//   const job = await client.submit(file, { targetLanguage: "es" });
//   const watch = client.watch(job.job_id, { onUpdate: (job) => render(job) });
//   ... watch.close();
//
// `watch` uses EventSource (server-sent events). EventSource cannot send headers, so with
// a bearer token it first trades the token for a short-lived single-job stream ticket
// (`?ticket=`); with the cookie session (`client.openSession()`) no ticket is needed.
// The browser reconnects by itself with `Last-Event-ID`; when the stream is refused (an
// expired ticket, say) it reconnects with a fresh ticket and `last_event_id`, so no update
// is missed or repeated. After repeated failures, or without EventSource, it polls.

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);
/** Statuses in which a job's segments can be edited (then `resume()` re-dubs them). */
export const REVIEWABLE = new Set(["awaiting_review", "completed"]);

export class OctaviaHttpError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.name = "OctaviaHttpError";
    this.status = status;
    this.error = (body && body.error) || `HTTP_${status}`;
    this.retryable = Boolean(body && body.retryable);
  }
}

const jobPath = (jobId) => `/api/v1/jobs/${encodeURIComponent(jobId)}`;

export class OctaviaClient {
  /**
   * @param {{baseUrl?: string, token?: string|null}} options
   *   baseUrl: where the bridge is ("" = this origin); token: a bearer JWT, or null to rely
   *   on the HttpOnly session cookie.
   */
  constructor({ baseUrl = "", token = null } = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.token = token;
  }

  _headers(extra = {}) {
    return this.token ? { ...extra, Authorization: `Bearer ${this.token}` } : { ...extra };
  }

  /** `body`: FormData, or a plain object sent as JSON. */
  async request(method, path, body = undefined) {
    const json = body !== undefined && !(body instanceof FormData);
    const response = await fetch(this.baseUrl + path, {
      method,
      body: json ? JSON.stringify(body) : body,
      headers: this._headers(json ? { "Content-Type": "application/json" } : {}),
      credentials: "same-origin",
    });
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new OctaviaHttpError(response.status, data);
    return data;
  }

  /** Keep the token in an HttpOnly, SameSite=Strict cookie; later calls need no token. */
  openSession() { return this.request("POST", "/api/v1/session"); }
  closeSession() { return this.request("DELETE", "/api/v1/session"); }

  /**
   * Submit a file; resolves to the new job. `pauseAfter`: phases ("transcribing",
   * "translating") after which the job waits in "awaiting_review" for `resume()`;
   * `webhookUrl`: where the server POSTs the job's signed webhooks.
   */
  submit(file, {
    targetLanguage, sourceLanguage = "", requestId = "", mixMode = "", pauseAfter = [],
    webhookUrl = "",
  } = {}) {
    const form = new FormData();
    form.append("file", file, file.name || "media");
    form.append("target_language", targetLanguage);
    if (sourceLanguage) form.append("source_language", sourceLanguage);
    if (requestId) form.append("request_id", requestId);
    if (mixMode) form.append("mix_mode", mixMode);
    for (const phase of [].concat(pauseAfter)) form.append("pause_after", phase);
    if (webhookUrl) form.append("webhook_url", webhookUrl);
    return this.request("POST", "/api/v1/jobs", form);
  }

  status(jobId) { return this.request("GET", `/api/v1/jobs/${encodeURIComponent(jobId)}/status`); }
  list(pageToken = "") {
    const query = pageToken ? `?page_token=${encodeURIComponent(pageToken)}` : "";
    return this.request("GET", `/api/v1/jobs${query}`);
  }
  cancel(jobId) { return this.request("POST", `/api/v1/jobs/${encodeURIComponent(jobId)}/cancel`); }

  // --- Review: segments, edits, resume, versions ---------------------------------------

  /** `{segments: [{index, start_seconds, end_seconds, speaker, source_text, target_text}],
   *  source_language, target_language, editable}` */
  segments(jobId) { return this.request("GET", `${jobPath(jobId)}/segments`); }
  /** Edit some segments (all or nothing): `[{index, target_text?, source_text?,
   *  start_seconds?, end_seconds?}]`; resolves to every segment after the edits. */
  updateSegments(jobId, edits) {
    return this.request("PATCH", `${jobPath(jobId)}/segments`, { edits });
  }
  /** Go on after review, or re-dub a completed job as its next version. */
  resume(jobId) { return this.request("POST", `${jobPath(jobId)}/resume`); }
  /** `{versions: [{version, completed_at, output_file, output_url, artifacts}]}` */
  versions(jobId) { return this.request("GET", `${jobPath(jobId)}/versions`); }
  /** `{deliveries: [...]}`: the job's webhook deliveries and their attempts. */
  webhooks(jobId) { return this.request("GET", `${jobPath(jobId)}/webhooks`); }

  /** URL of a result file (`version` 0: the current one). Plain links and `<audio src>`
   *  work with the cookie session; with a bearer token use `artifact()`. */
  artifactUrl(jobId, name, version = 0) {
    const query = version ? `?version=${encodeURIComponent(version)}` : "";
    return `${this.baseUrl}${jobPath(jobId)}/artifacts/${encodeURIComponent(name)}${query}`;
  }
  /** URL of the job's source media (see `artifactUrl` about credentials). */
  sourceUrl(jobId) { return `${this.baseUrl}${jobPath(jobId)}/source`; }

  /** A result file as a Blob (works with a bearer token, unlike a plain link). */
  artifact(jobId, name, { version = 0 } = {}) {
    return this._blob(this.artifactUrl(jobId, name, version));
  }
  /** The job's source media as a Blob. */
  source(jobId) { return this._blob(this.sourceUrl(jobId)); }

  async _blob(url) {
    const response = await fetch(url, { headers: this._headers(), credentials: "same-origin" });
    if (!response.ok) {
      throw new OctaviaHttpError(response.status, await response.json().catch(() => null));
    }
    return response.blob();
  }

  async _streamUrl(jobId, lastEventId) {
    const params = new URLSearchParams();
    if (this.token) {
      const path = `/api/v1/jobs/${encodeURIComponent(jobId)}/stream-ticket`;
      params.set("ticket", (await this.request("POST", path)).ticket);
    }
    if (lastEventId) params.set("last_event_id", String(lastEventId));
    const query = params.toString();
    return `${this.baseUrl}/api/v1/jobs/${encodeURIComponent(jobId)}/stream${query ? "?" + query : ""}`;
  }

  /**
   * Follow a job until it ends.
   * @param {string} jobId
   * @param {{onUpdate?: Function, onEnd?: Function, onError?: Function, onMode?: Function,
   *          pollInterval?: number, maxStreamFailures?: number}} handlers
   *   onUpdate(job) for each change ("awaiting_review" is not an end: the watch stays
   *   open and goes on after `resume()`); onEnd(job) once, at the terminal state;
   *   onError(error) when a request fails; onMode("stream"|"polling") when the transport
   *   changes.
   * @returns {{close: Function}}
   */
  watch(jobId, {
    onUpdate = () => {}, onEnd = () => {}, onError = () => {}, onMode = () => {},
    pollInterval = 1000, maxStreamFailures = 3,
  } = {}) {
    let closed = false;
    let source = null;
    let timer = null;
    let lastId = 0;
    let lastSequence = -1;
    let failures = 0;

    const deliver = (job) => {
      if (closed || job.sequence <= lastSequence) return;
      lastSequence = job.sequence;
      onUpdate(job);
      if (TERMINAL.has(job.status)) { stop(); onEnd(job); }
    };
    const stop = () => {
      closed = true;
      if (source) { source.close(); source = null; }
      if (timer) { clearTimeout(timer); timer = null; }
    };
    const poll = async () => {
      if (closed) return;
      try {
        deliver(await this.status(jobId));
      } catch (error) {
        onError(error);
        if (error instanceof OctaviaHttpError && !error.retryable && error.status < 500) {
          stop();
          return;
        }
      }
      if (!closed) timer = setTimeout(poll, pollInterval);
    };
    const fallBack = () => { onMode("polling"); poll(); };
    const connect = async () => {
      if (closed) return;
      let url;
      try {
        url = await this._streamUrl(jobId, lastId);
      } catch (error) {
        onError(error);
        fallBack();
        return;
      }
      if (closed) return;
      source = new EventSource(url, { withCredentials: false });
      onMode("stream");
      source.onmessage = (event) => {
        failures = 0;
        lastId = Number(event.lastEventId) || lastId;
        deliver(JSON.parse(event.data));
      };
      source.onerror = () => {
        if (closed) return;
        // CONNECTING: the browser retries by itself, sending Last-Event-ID.
        // CLOSED: it gave up (a refused ticket, a proxy error): reconnect ourselves.
        if (source.readyState !== EventSource.CLOSED) return;
        source = null;
        failures += 1;
        if (failures >= maxStreamFailures) fallBack();
        else timer = setTimeout(connect, Math.min(500 * 2 ** failures, 5000));
      };
    };

    if (typeof EventSource === "undefined") fallBack();
    else connect();
    return { close: stop };
  }
}
