// The demo page: sign in, submit a file, watch it live, review and re-dub its lines,
// play and download the results of every version.
import { OctaviaClient } from "./octavia.js";
import { ReviewView } from "./review.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "octavia.token";
let watch = null;
let currentJob = null;

function client() {
  return new OctaviaClient({ token: sessionStorage.getItem(TOKEN_KEY) });
}

async function showAuth() {
  try {
    const who = await client().request("GET", "/api/v1/session");
    $("auth-state").textContent = `Signed in as ${who.subject}.`;
  } catch {
    $("auth-state").textContent = "Not signed in: paste a token.";
  }
}

$("save-token").addEventListener("click", () => {
  const token = $("token").value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  $("token").value = "";
  showAuth();
});

$("open-session").addEventListener("click", async () => {
  const token = $("token").value.trim() || sessionStorage.getItem(TOKEN_KEY);
  if (!token) { $("auth-state").textContent = "Paste a token first."; return; }
  try {
    await new OctaviaClient({ token }).openSession();
    sessionStorage.removeItem(TOKEN_KEY); // the HttpOnly cookie holds it now
    $("token").value = "";
  } catch (error) {
    $("auth-state").textContent = `Sign-in failed: ${error.message}`;
    return;
  }
  showAuth();
});

$("sign-out").addEventListener("click", async () => {
  sessionStorage.removeItem(TOKEN_KEY);
  await client().closeSession().catch(() => {});
  showAuth();
});

function render(job) {
  currentJob = job;
  const percent = Math.round(job.progress_percentage);
  $("progress").firstElementChild.style.width = `${percent}%`;
  $("progress").setAttribute("aria-valuenow", String(percent));
  $("percent").textContent = `${percent} %`;
  $("phase").textContent = job.phase;
  $("step").textContent = job.current_step || "";
  $("status").textContent = job.status;
  $("version").textContent = String(job.version ?? 1);
  $("job-id").textContent = job.job_id;
  $("error").hidden = !job.error_message;
  $("error").textContent = job.error_message || "";
  review.update(job);
}

async function showResults(job) {
  $("cancel").hidden = true;
  $("submit").disabled = false;
  if (job.status !== "completed") return;
  const list = $("downloads");
  list.replaceChildren();
  const api = client();
  for (const artifact of job.artifacts) {
    // Fetched with the caller's credentials (a bearer token cannot ride on a plain link).
    const blob = await api.artifact(job.job_id, artifact.name, { version: job.version });
    const url = URL.createObjectURL(blob);
    const link = Object.assign(document.createElement("a"), {
      href: url, download: artifact.name, textContent: `${artifact.name} (${artifact.size_bytes} bytes)`,
    });
    link.className = "download";
    const item = document.createElement("li");
    item.append(link);
    list.append(item);
    if (artifact.name === job.output_file && artifact.media_type.startsWith("audio/")) {
      $("player").src = url;
    }
  }
  $("results").hidden = false;
  await showVersions(job);
}

async function showVersions(job) {
  let versions;
  try {
    ({ versions } = await client().versions(job.job_id));
  } catch (error) {
    console.warn("octavia: versions:", error);
    return;
  }
  const items = versions.map((version) => {
    const item = document.createElement("li");
    item.dataset.version = String(version.version);
    item.append(`Version ${version.version} (${version.completed_at}): `);
    for (const artifact of version.artifacts) {
      const link = Object.assign(document.createElement("a"), {
        href: `${artifact.url}&download=1`, textContent: artifact.name,
        title: `sha256 ${artifact.sha256}`,
      });
      link.className = "version-download";
      link.addEventListener("click", (event) => download(event, job.job_id, artifact, version));
      item.append(link, " ");
    }
    return item;
  });
  $("version-list").replaceChildren(...items);
  $("versions").hidden = items.length === 0;
}

// With a bearer token a plain link cannot authenticate: fetch the file, then save it.
async function download(event, jobId, artifact, version) {
  const api = client();
  if (!api.token) return; // the cookie session rides on the link itself
  event.preventDefault();
  const blob = await api.artifact(jobId, artifact.name, { version: version.version });
  const url = URL.createObjectURL(blob);
  Object.assign(document.createElement("a"), { href: url, download: artifact.name }).click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function follow(jobId) {
  if (watch) watch.close();
  $("submit").disabled = true;
  $("cancel").hidden = false;
  watch = client().watch(jobId, {
    onUpdate: render,
    onEnd: showResults,
    onMode: (mode) => { $("mode").textContent = mode; },
    onError: (error) => console.warn("octavia:", error),
  });
}

const review = new ReviewView(client, (job) => {
  $("results").hidden = true;
  render(job);
  follow(job.job_id); // the live bar again, through the re-dub
});

$("submit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  if (watch) watch.close();
  $("results").hidden = true;
  $("versions").hidden = true;
  review.reset();
  $("submit").disabled = true;
  let job;
  try {
    job = await client().submit(file, {
      targetLanguage: $("language").value,
      pauseAfter: [["pause-transcribing", "transcribing"], ["pause", "translating"]]
        .filter(([id]) => $(id).checked).map(([, phase]) => phase),
    });
  } catch (error) {
    $("job").hidden = false;
    $("error").hidden = false;
    $("error").textContent = `Submit failed: ${error.message}`;
    $("submit").disabled = false;
    return;
  }
  $("job").hidden = false;
  render(job);
  follow(job.job_id);
});

$("cancel").addEventListener("click", async () => {
  if (currentJob) await client().cancel(currentJob.job_id).catch(() => {});
});

showAuth();
