// The job page's live part: follow the job's events (Server-Sent Events, authenticated by the
// session cookie) and move the progress bar, stage, loss and ETA; when the job ends, fetch the
// results panel and swap it in. No framework, no build step.
"use strict";

function formatDuration(seconds) {
  if (seconds === null || !isFinite(seconds)) return "–";
  seconds = Math.round(seconds);
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
  return m ? `${m} min ${String(s).padStart(2, "0")} s` : `${s} s`;
}

function follow(live) {
  const jobId = live.dataset.job;
  const $ = (id) => document.getElementById(id);
  let origin = null; // [time, step] of the first progress event seen: the ETA's rate
  const source = new EventSource(`/ui/jobs/${jobId}/events?after=${live.dataset.lastEvent || 0}`);

  function setStatus(status) {
    live.dataset.status = status;
    $("status").innerHTML = "";
    const badge = document.createElement("span");
    badge.className = `badge status-${status}`;
    badge.textContent = status;
    $("status").appendChild(badge);
  }

  function addEvent(kind, data) {
    const item = document.createElement("li");
    const when = document.createElement("span");
    when.className = "mono muted";
    when.textContent = new Date().toTimeString().slice(0, 8);
    item.append(when, ` ${kind}`);
    if (kind === "progress") item.append(` ${data.step}/${data.total}`);
    $("events").prepend(item);
  }

  source.addEventListener("progress", (message) => {
    const data = JSON.parse(message.data).data;
    const bar = $("progress");
    bar.max = data.total;
    bar.value = data.step;
    $("progress-text").textContent = `step ${data.step} / ${data.total}`;
    $("stage").textContent = data.stage || "training";
    if (data.losses && typeof data.losses.loss === "number") {
      $("loss").textContent = data.losses.loss.toPrecision(4);
    }
    const now = Date.now() / 1000;
    if (origin === null || data.step < origin[1]) origin = [now, data.step];
    const done = data.step - origin[1];
    $("eta").textContent = done > 0 ? formatDuration((now - origin[0]) / done * (data.total - data.step)) : "–";
    if (live.dataset.status === "queued") setStatus("running");
    addEvent("progress", data);
  });

  for (const kind of ["claimed", "resumed", "requeued", "cancel_requested", "checkpoint"]) {
    source.addEventListener(kind, () => {
      if (kind === "claimed") setStatus("running");
      if (kind === "cancel_requested") setStatus("cancelling");
      if (kind === "requeued") setStatus("queued");
      if (kind === "resumed") origin = null;
      addEvent(kind, {});
    });
  }

  for (const kind of ["succeeded", "failed", "cancelled"]) {
    source.addEventListener(kind, async (message) => {
      source.close();
      const event = JSON.parse(message.data);
      setStatus(kind);
      addEvent(kind, event.data);
      $("stage").textContent = kind;
      $("eta").textContent = "done";
      if (kind === "succeeded") $("progress").value = $("progress").max;
      const cancel = $("cancel-form");
      if (cancel) cancel.remove();
      if (kind === "failed" && event.data.code) {
        const alert = document.createElement("p");
        alert.className = "alert";
        alert.id = "job-error";
        alert.textContent = `${event.data.code}${event.data.message ? ": " + event.data.message : ""}`;
        live.appendChild(alert);
      }
      const response = await fetch(`/ui/jobs/${jobId}/results`, { credentials: "same-origin" });
      if (response.ok) $("results").innerHTML = await response.text();
      live.dataset.finished = "true";
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live && live.dataset.follow === "true") follow(live);
});
