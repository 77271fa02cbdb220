// Drag-and-drop upload: one request per file, each with its own progress bar and verdict.
(function () {
  const zone = document.getElementById("dropzone");
  if (!zone) return;
  const input = document.getElementById("id_files");
  const list = document.getElementById("upload-list");
  const csrf = zone.querySelector("input[name=csrfmiddlewaretoken]").value;
  const maxBytes = Number(zone.dataset.maxBytes);
  let pending = Promise.resolve();

  function row(file) {
    const li = document.createElement("li");
    li.className = "upload";
    const name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    const verdict = document.createElement("span");
    verdict.className = "upload-verdict muted";
    verdict.textContent = "waiting";
    li.append(name, bar, verdict);
    list.prepend(li);
    return { li, bar, verdict };
  }

  function finish(ui, ok, message) {
    ui.bar.value = 1;
    ui.li.classList.add(ok ? "upload-ok" : "upload-bad");
    ui.verdict.className = "upload-verdict";
    ui.verdict.textContent = message;
  }

  function send(file, ui) {
    return new Promise((resolve) => {
      if (file.size > maxBytes) {
        finish(ui, false, `${file.name}: too large (limit ${Math.round(maxBytes / 2 ** 20)} MB).`);
        return resolve();
      }
      const body = new FormData();
      body.append("files", file);
      const speaker = zone.querySelector("input[name=speaker]");
      if (speaker && speaker.value.trim()) body.append("speaker", speaker.value.trim());
      const xhr = new XMLHttpRequest();
      xhr.open("POST", zone.action);
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.setRequestHeader("Accept", "application/json");
      ui.verdict.textContent = "uploading";
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) ui.bar.value = e.loaded / e.total; };
      xhr.onload = () => {
        let result = { ok: false, message: `${file.name}: the server answered ${xhr.status}.` };
        try { result = JSON.parse(xhr.responseText).results[0]; } catch (err) { /* keep default */ }
        finish(ui, result.ok, result.message);
        resolve();
      };
      xhr.onerror = () => { finish(ui, false, `${file.name}: the connection failed; try again.`); resolve(); };
      xhr.send(body);
    });
  }

  function upload(files) {
    for (const file of files) {
      const ui = row(file);
      // One at a time: the server decodes each file, and two cores are plenty busy.
      pending = pending.then(() => send(file, ui));
    }
    pending.then(() => window.htmx && htmx.ajax("GET", window.location.pathname, { target: "#recording-table", swap: "outerHTML" }));
  }

  input.addEventListener("change", () => { upload(Array.from(input.files)); input.value = ""; });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.remove("dragging"); });
  }
  zone.addEventListener("drop", (e) => upload(Array.from(e.dataTransfer.files)));
})();
