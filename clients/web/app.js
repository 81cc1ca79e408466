// The demo page: sign in, submit a file, watch it live, play and download the results.
import { OctaviaClient } from "./octavia.js";

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
  $("job-id").textContent = job.job_id;
  $("error").hidden = !job.error_message;
  $("error").textContent = job.error_message || "";
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
    const url = URL.createObjectURL(await api.artifact(job.job_id, artifact.name));
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
}

$("submit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  if (watch) watch.close();
  $("results").hidden = true;
  $("submit").disabled = true;
  let job;
  try {
    job = await client().submit(file, { targetLanguage: $("language").value });
  } catch (error) {
    $("job").hidden = false;
    $("error").hidden = false;
    $("error").textContent = `Submit failed: ${error.message}`;
    $("submit").disabled = false;
    return;
  }
  $("job").hidden = false;
  $("cancel").hidden = false;
  render(job);
  watch = client().watch(job.job_id, {
    onUpdate: render,
    onEnd: showResults,
    onMode: (mode) => { $("mode").textContent = mode; },
    onError: (error) => console.warn("octavia:", error),
  });
});

$("cancel").addEventListener("click", async () => {
  if (currentJob) await client().cancel(currentJob.job_id).catch(() => {});
});

showAuth();
