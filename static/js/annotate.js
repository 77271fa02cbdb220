// The transcription page: waveform, playback and keys that work while typing; the text in
// progress is kept in localStorage until the server has it.
(function () {
  const speedKey = "vernacular:speed";
  const speeds = [0.5, 0.75, 1, 1.25, 1.5, 2];
  let ws = null; // the current workspace's parts
  let sending = false; // a submission is on its way: keys wait for the next clip
  let afterSend = null; // the key action pressed meanwhile

  function textKey(lease) { return `vernacular:text:${lease}`; }

  const NUDGE = 0.1; // seconds a key moves a boundary
  const MIN_CLIP = 0.3; // seconds, as the server insists
  const CUT_AFTER = 600; // ms after the last nudge or drag before the clip is cut again
  const RULER = 14; // px of time ruler at the top

  // The recording around the clip (view: seconds in the recording), the clip's boundaries as
  // they will be cut, the play position, and a time ruler.
  // The recording around the clip (view: seconds in the recording), as a waveform or a
  // spectrogram, with the clip's boundaries as they will be cut, the play position and a
  // time ruler.
  function drawWaveform(canvas, peaks, view, bounds, playAt, image) {
    const ctx = canvas.getContext("2d");
    const { width, height } = canvas;
    const span = view.end - view.start;
    const x = (t) => ((t - view.start) / span) * width;
    ctx.clearRect(0, 0, width, height);
    const mid = RULER + (height - RULER) / 2;
    const x0 = x(bounds.start), x1 = x(bounds.end), xp = x(playAt);
    if (image) {
      ctx.putImageData(image, 0, RULER);
      ctx.fillStyle = "rgba(246,245,241,.65)"; // the recording outside the clip, faded
      ctx.fillRect(0, RULER, Math.max(0, x0), height - RULER);
      ctx.fillRect(x1, RULER, Math.max(0, width - x1), height - RULER);
    } else {
      for (let i = 0; i < peaks.length; i++) {
        const h = Math.max(1, peaks[i] * (height - RULER - 8));
        const inside = i >= x0 && i < x1;
        ctx.fillStyle = !inside ? "#dcdfdb" : i < xp ? "#2f6f5e" : "#b9c7c1";
        ctx.fillRect(i, mid - h / 2, 1, h);
      }
      ctx.fillStyle = "rgba(47,111,94,.08)";
      ctx.fillRect(x0, RULER, x1 - x0, height - RULER);
    }
    ctx.fillStyle = "#2f6f5e"; // the clip's edges, with a tab to drag
    for (const edge of [x0, x1]) {
      ctx.fillRect(edge - 1, RULER, 2, height - RULER);
      ctx.fillRect(edge - 4, RULER, 8, 10);
    }
    ctx.fillStyle = image ? "#ffffff" : "#1f2328";
    if (playAt > bounds.start) ctx.fillRect(xp, RULER, 2, height - RULER);
    const step = span > 12 ? 2 : span > 6 ? 1 : span > 2 ? 0.5 : 0.1;
    const labelEvery = step < 0.5 ? 0.5 : 1;
    ctx.font = "10px system-ui, sans-serif";
    ctx.fillStyle = "#646b73";
    for (let i = Math.ceil(view.start / step); i * step <= view.end; i++) {
      const t = Math.round(i * step * 10) / 10;
      const tx = x(t);
      const labeled = Math.abs(t / labelEvery - Math.round(t / labelEvery)) < 1e-6;
      ctx.fillRect(tx, 0, 1, labeled ? 6 : 3);
      if (labeled) ctx.fillText(`${t} s`, tx + 2, 10);
    }
  }

  // Peaks of samples [from, to) of the decoded context, one per column, scaled to the view.
  function peaksOf(data, from, to, columns) {
    const step = Math.max(1, (to - from) / columns);
    const peaks = new Float32Array(columns);
    let max = 0.0001;
    for (let i = 0; i < columns; i++) {
      let peak = 0;
      const end = Math.min(to, Math.floor(from + (i + 1) * step));
      for (let j = Math.floor(from + i * step); j < end; j++) peak = Math.max(peak, Math.abs(data[j]));
      peaks[i] = peak;
      max = Math.max(max, peak);
    }
    return peaks.map((p) => p / max);
  }

  // A spectrogram of samples [from, to): a 512-point FFT per column, 0-8 kHz bottom to top,
  // in dB over the loudest 70 dB, dark on light.
  function spectrogramOf(data, rate, from, to, width, height) {
    const size = 512, bins = Math.min(size / 2, Math.floor((8000 / rate) * size));
    const image = new ImageData(width, height);
    const hann = new Float32Array(size).map((_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / size));
    const columns = [];
    let loudest = -Infinity;
    for (let x = 0; x < width; x++) {
      const centre = Math.floor(from + ((x + 0.5) / width) * (to - from));
      const re = new Float32Array(size), im = new Float32Array(size);
      for (let i = 0; i < size; i++) re[i] = (data[centre - size / 2 + i] || 0) * hann[i];
      fft(re, im);
      const db = new Float32Array(bins);
      for (let b = 0; b < bins; b++) {
        db[b] = 10 * Math.log10(re[b] * re[b] + im[b] * im[b] + 1e-12);
        loudest = Math.max(loudest, db[b]);
      }
      columns.push(db);
    }
    for (let x = 0; x < width; x++) {
      for (let y = 0; y < height; y++) {
        const b = Math.floor(((height - 1 - y) / height) * bins);
        const level = Math.min(1, Math.max(0, (columns[x][b] - loudest + 70) / 70));
        const shade = Math.round(255 - 230 * level);
        const at = 4 * (y * width + x);
        image.data[at] = shade; image.data[at + 1] = shade; image.data[at + 2] = Math.min(255, shade + 10);
        image.data[at + 3] = 255;
      }
    }
    return image;
  }

  // In-place radix-2 FFT (re, im of a power-of-two length).
  function fft(re, im) {
    const n = re.length;
    for (let i = 1, j = 0; i < n; i++) {
      let bit = n >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) { [re[i], re[j]] = [re[j], re[i]]; [im[i], im[j]] = [im[j], im[i]]; }
    }
    for (let len = 2; len <= n; len <<= 1) {
      const angle = (-2 * Math.PI) / len;
      for (let i = 0; i < n; i += len) {
        for (let k = 0; k < len / 2; k++) {
          const wr = Math.cos(angle * k), wi = Math.sin(angle * k);
          const ar = re[i + k + len / 2], ai = im[i + k + len / 2];
          const tr = ar * wr - ai * wi, ti = ar * wi + ai * wr;
          re[i + k + len / 2] = re[i + k] - tr; im[i + k + len / 2] = im[i + k] - ti;
          re[i + k] += tr; im[i + k] += ti;
        }
      }
    }
  }

  let decoder = null; // one AudioContext for every clip: browsers allow only a few
  const spectrogramKey = "vernacular:spectrogram";

  // What the canvas shows for the current view: peaks, or the spectrogram when it is on.
  function renderView() {
    if (!ws || !ws.samples) return;
    const canvas = document.getElementById("waveform");
    const { data, rate, start } = ws.samples;
    const from = Math.max(0, Math.floor((ws.view.start - start) * rate));
    const to = Math.min(data.length, Math.ceil((ws.view.end - start) * rate));
    ws.peaks = peaksOf(data, from, to, canvas.width);
    ws.image = localStorage.getItem(spectrogramKey) === "on"
      ? spectrogramOf(data, rate, from, to, canvas.width, canvas.height - RULER)
      : null;
    canvas.dataset.view = ws.image ? "spectrogram" : "waveform";
    canvas.dataset.span = (ws.view.end - ws.view.start).toFixed(2); // seconds shown
    ws.redraw();
  }

  // Zoom around the clip's middle: `factor` < 1 in, > 1 out, between 0.5 s and the context.
  function zoom(factor) {
    if (!ws || !ws.full) return;
    const fullSpan = ws.full.end - ws.full.start;
    const span = Math.min(fullSpan, Math.max(0.5, (ws.view.end - ws.view.start) * factor));
    const centre = (ws.bounds.start + ws.bounds.end) / 2;
    const start = Math.min(Math.max(ws.full.start, centre - span / 2), ws.full.end - span);
    ws.view = { start, end: start + span };
    renderView();
  }

  function toggleSpectrogram() {
    const on = localStorage.getItem(spectrogramKey) === "on";
    localStorage.setItem(spectrogramKey, on ? "off" : "on");
    renderView();
  }

  function setup() {
    const root = document.getElementById("workspace");
    const audio = document.getElementById("audio");
    const text = document.getElementById("id_text");
    ws = { root, audio, text, peaks: null };
    if (!root || !text || !audio) return;
    const canvas = document.getElementById("waveform");
    const play = document.getElementById("play-button");
    const time = document.getElementById("time");
    const speed = document.getElementById("speed");
    const lease = root.dataset.lease;

    // Text survives a reload or a dropped connection.
    const kept = localStorage.getItem(textKey(lease));
    if (kept !== null && kept !== text.value && !text.classList.contains("invalid")) {
      text.value = kept;
      document.getElementById("restored-note").hidden = false;
    }
    text.addEventListener("input", () => {
      localStorage.setItem(textKey(lease), text.value);
      keepOnServer();
      text.classList.remove("is-draft");
      checkCharacters();
    });
    const useKey = document.getElementById("use-answer-key");
    if (useKey) useKey.addEventListener("click", useAnswerKey);
    text.focus();
    text.setSelectionRange(text.value.length, text.value.length);
    checkCharacters();

    speed.value = localStorage.getItem(speedKey) || "1";
    audio.playbackRate = Number(speed.value);
    audio.preservesPitch = true;
    speed.addEventListener("change", () => setSpeed(Number(speed.value)));

    canvas.width = canvas.clientWidth || 800;
    const player = document.getElementById("player");
    const clipStart = Number(player.dataset.clipStart);
    ws.view = { start: Number(player.dataset.contextStart), end: Number(player.dataset.contextEnd) };
    ws.bounds = { start: clipStart, end: Number(player.dataset.clipEnd) };
    ws.clipStart = clipStart;
    ws.full = { ...ws.view };
    ws.redraw = () => ws.peaks && drawWaveform(canvas, ws.peaks, ws.view, ws.bounds, clipStart + audio.currentTime, ws.image);
    const redraw = ws.redraw;
    const mine = ws;
    fetch(player.dataset.contextUrl, { credentials: "same-origin" })
      .then((r) => r.arrayBuffer())
      .then((bytes) => {
        decoder = decoder || new (window.AudioContext || window.webkitAudioContext)();
        return decoder.decodeAudioData(bytes);
      })
      .then((buffer) => {
        if (ws !== mine) return; // the next clip is already here
        ws.samples = { data: buffer.getChannelData(0), rate: buffer.sampleRate, start: ws.full.start };
        renderView();
        canvas.dataset.drawn = "true";
      })
      .catch(() => { /* the waveform is a nicety; playback still works */ });

    let frame = null;
    const tick = () => {
      redraw();
      time.textContent = `${audio.currentTime.toFixed(1)} / ${(audio.duration || 0).toFixed(1)} s`;
      if (!audio.paused) frame = requestAnimationFrame(tick);
    };
    audio.addEventListener("play", () => { play.textContent = "❚❚ Pause"; frame = requestAnimationFrame(tick); });
    audio.addEventListener("pause", () => { play.textContent = "▶ Play"; cancelAnimationFrame(frame); tick(); });
    audio.addEventListener("ended", () => { play.textContent = "▶ Play"; tick(); });
    play.addEventListener("click", togglePlay);
    document.getElementById("replay-button").addEventListener("click", replay);
    // Press on an edge and drag to move it; a click elsewhere in the clip plays from there.
    const secondsAt = (e) => ws.view.start + (e.offsetX / canvas.clientWidth) * (ws.view.end - ws.view.start);
    const edgeAt = (e) => {
      const px = (t) => ((t - ws.view.start) / (ws.view.end - ws.view.start)) * canvas.clientWidth;
      if (Math.abs(e.offsetX - px(ws.bounds.start)) <= 6) return "start";
      if (Math.abs(e.offsetX - px(ws.bounds.end)) <= 6) return "end";
      return null;
    };
    let dragging = null;
    canvas.addEventListener("pointerdown", (e) => {
      dragging = document.getElementById("boundaries-form") ? edgeAt(e) : null;
      if (dragging) { canvas.setPointerCapture(e.pointerId); e.preventDefault(); return; }
      const t = secondsAt(e) - clipStart;
      if (!audio.duration || t < 0 || t > audio.duration) return;
      audio.currentTime = t;
      audio.play().catch(() => {});
      text.focus();
    });
    canvas.addEventListener("pointermove", (e) => {
      canvas.style.cursor = dragging || edgeAt(e) ? "ew-resize" : "pointer";
      if (dragging) moveEdge(dragging, secondsAt(e));
    });
    canvas.addEventListener("pointerup", () => {
      if (dragging) { dragging = null; scheduleCut(); text.focus(); }
    });
    for (const [id, act] of [["zoom-in", () => zoom(0.5)], ["zoom-out", () => zoom(2)], ["spectrogram-button", toggleSpectrogram]]) {
      const button = document.getElementById(id);
      if (button) button.addEventListener("click", () => { act(); text.focus(); });
    }
    const split = document.getElementById("split-button"); // absent on a labeled clip
    if (split) split.addEventListener("click", splitHere);
    const merge = document.getElementById("merge-button");
    if (merge) merge.addEventListener("click", mergeNext);
    // Autoplay when a clip opens; browsers refuse before the first key press on the page.
    audio.play().catch(() => { time.textContent += " · press Ctrl+Space to play"; });
  }

  // The text in progress goes to the server too, a second after typing stops and when the
  // page is left: another machine gets it back with the lease.
  let unsentTimer = null;
  function unsentForm() {
    const form = document.getElementById("transcript-form");
    if (!form || !form.dataset.unsentUrl || !ws || !ws.text) return null;
    const data = new FormData();
    data.append("csrfmiddlewaretoken", form.elements.csrfmiddlewaretoken.value);
    data.append("lease_token", form.elements.lease_token.value);
    data.append("text", ws.text.value);
    return { url: form.dataset.unsentUrl, data };
  }
  function keepOnServer() {
    clearTimeout(unsentTimer);
    unsentTimer = setTimeout(() => {
      unsentTimer = null;
      const unsent = unsentForm();
      if (unsent) fetch(unsent.url, { method: "POST", body: unsent.data, credentials: "same-origin" }).catch(() => {});
    }, 1000);
  }
  window.addEventListener("pagehide", () => {
    if (!unsentTimer) return;
    clearTimeout(unsentTimer);
    unsentTimer = null;
    const unsent = unsentForm();
    if (unsent) navigator.sendBeacon(unsent.url, unsent.data);
  });

  function checkCharacters() {
    const allowed = new Set(Array.from(ws.text.dataset.allowed || ""));
    const offending = [];
    for (const ch of Array.from(ws.text.value.normalize("NFC"))) {
      if (!allowed.has(ch) && !/\s/.test(ch) && !offending.includes(ch)) offending.push(ch);
    }
    const box = document.getElementById("text-errors");
    if (offending.length) {
      box.textContent = `Not in this project's alphabet: ${offending.join(" ")}`;
      ws.text.classList.add("invalid");
    } else if (box.dataset.server !== "kept") {
      box.textContent = "";
      ws.text.classList.remove("invalid");
    }
    return offending;
  }

  // Boundaries: keys and drags move them on the page; the clip is cut again on the server
  // once they rest, and the new clip comes back with the text in the box.
  let cutTimer = null;
  function moveEdge(which, seconds) {
    const form = document.getElementById("boundaries-form");
    if (!ws || !ws.bounds || !form) return;
    const b = ws.bounds;
    if (which === "start") b.start = Math.min(Math.max(seconds, ws.view.start), b.end - MIN_CLIP);
    else b.end = Math.max(Math.min(seconds, ws.view.end), b.start + MIN_CLIP);
    form.elements.start.value = b.start.toFixed(2);
    form.elements.end.value = b.end.toFixed(2);
    if (ws.redraw) ws.redraw();
  }
  function nudge(which, direction) {
    if (!ws || !ws.bounds || !document.getElementById("boundaries-form")) return;
    moveEdge(which, ws.bounds[which] + direction * NUDGE);
    scheduleCut();
  }
  function scheduleCut() {
    clearTimeout(cutTimer);
    cutTimer = setTimeout(() => sendBoundaries("reshape"), CUT_AFTER);
  }
  function sendBoundaries(action) {
    clearTimeout(cutTimer);
    const form = ready(document.getElementById("boundaries-form"));
    if (!form || !ws || !ws.text) return;
    form.elements.action.value = action;
    form.elements.text.value = ws.text.value;
    form.elements.at.value = (ws.clipStart + ws.audio.currentTime).toFixed(4);
    form.requestSubmit();
  }
  function splitHere() {
    if (!ws || !ws.audio) return;
    sendBoundaries("split");
  }
  function mergeNext() { sendBoundaries("merge"); }

  // Demo projects only: the synthetic speech's true text, for those who do not speak it.
  function useAnswerKey() {
    const key = document.getElementById("answer-key-text");
    if (!key || !ws.text) return;
    ws.text.value = key.textContent.trim();
    ws.text.dispatchEvent(new Event("input"));
    ws.text.focus();
  }

  function togglePlay() {
    if (!ws || !ws.audio) return;
    if (ws.audio.paused) ws.audio.play().catch(() => {}); else ws.audio.pause();
  }
  function replay() {
    if (!ws || !ws.audio) return;
    ws.audio.currentTime = 0;
    ws.audio.play().catch(() => {});
  }
  function setSpeed(value) {
    const select = document.getElementById("speed");
    if (!select || !ws.audio) return;
    select.value = String(value);
    ws.audio.playbackRate = value;
    localStorage.setItem(speedKey, String(value));
  }
  function nudgeSpeed(direction) {
    if (!document.getElementById("speed")) return;
    const current = speeds.indexOf(Number(document.getElementById("speed").value));
    setSpeed(speeds[Math.min(speeds.length - 1, Math.max(0, current + direction))]);
  }
  // A key pressed right after a swap can beat htmx to the new form, which would then be sent
  // as a plain page load: make sure htmx has it first (process() skips what it knows).
  function ready(form) {
    if (form && window.htmx) htmx.process(form);
    return form;
  }
  function followLink(id) {
    const link = document.getElementById(id);
    if (!link) return;
    if (window.htmx) htmx.process(link);
    link.click();
  }
  function submitForm(id) {
    const form = ready(document.getElementById(id));
    if (form) form.requestSubmit();
  }

  // Characters outside the alphabet are named as they are typed; sending them would only
  // come back refused, so the page does not send them (without JavaScript the server says so).
  document.body.addEventListener("htmx:confirm", (e) => {
    if (e.target.id !== "transcript-form" || !ws || !ws.text) return;
    const flagged = e.detail.triggeringEvent && e.detail.triggeringEvent.submitter &&
      e.detail.triggeringEvent.submitter.name === "flag";
    if (!flagged && checkCharacters().length) {
      e.preventDefault();
      ws.text.focus();
    }
  });
  // A boundary edit carries the text in the box, whichever way it was sent.
  document.body.addEventListener("htmx:configRequest", (e) => {
    if (e.target.id === "boundaries-form" && ws && ws.text) e.detail.parameters.text = ws.text.value;
  });
  // While a submission is on its way, typing would be lost when the answer replaces the box.
  document.body.addEventListener("htmx:beforeRequest", (e) => {
    // Whatever is sent now carries the text (or ends the lease): no separate copy after it,
    // and no boundary edit still waiting for the keys to rest.
    if (e.target.closest && e.target.closest("#workspace")) {
      clearTimeout(unsentTimer); unsentTimer = null;
      if (e.target.id !== "boundaries-form") clearTimeout(cutTimer);
    }
    if (e.target.closest && e.target.closest("#workspace")) sending = true;
    const keepsText = e.target.id === "transcript-form" || e.target.id === "boundaries-form";
    if (keepsText && ws && ws.text) ws.text.readOnly = true;
  });
  document.body.addEventListener("htmx:afterRequest", (e) => {
    // On success the keys wait until the new clip is in place (afterSettle), else free now.
    if (!e.detail.successful) { sending = false; afterSend = null; }
    if (ws && ws.text) ws.text.readOnly = false;
  });

  // The person's keys (labeling/hotkeys.py): action -> KeyboardEvent.code, with Alt.
  const bindingsTag = document.getElementById("key-bindings");
  const bindings = bindingsTag ? JSON.parse(bindingsTag.textContent) : {};
  const ACTIONS = {
    replay: () => replay(),
    slower: () => nudgeSpeed(-1),
    faster: () => nudgeSpeed(1),
    skip: () => submitForm("skip-form"),
    later: () => { const later = ready(document.getElementById("later-button")); if (later) later.click(); },
    undo: () => submitForm("undo-form"),
    older: () => followLink("older-link"),
    newer: () => followLink("newer-link"),
    start_earlier: () => nudge("start", -1),
    start_later: () => nudge("start", 1),
    end_earlier: () => nudge("end", -1),
    end_later: () => nudge("end", 1),
    split: () => splitHere(),
    merge: () => mergeNext(),
    zoom_in: () => zoom(0.5),
    zoom_out: () => zoom(2),
    spectrogram: () => toggleSpectrogram(),
    help: () => openKeys(),
    answer_key: () => useAnswerKey(),
  };
  const byCode = {};
  for (const [action, code] of Object.entries(bindings)) byCode[code] = ACTIONS[action];

  function actionFor(e) {
    if (e.ctrlKey && !e.altKey && e.key === "Enter") return () => submitForm("transcript-form");
    if (e.ctrlKey && !e.altKey && (e.key === " " || e.code === "Space")) return togglePlay;
    // Alt alone: Ctrl+Alt is AltGr on many layouts, which types letters (ą, ż, ó...).
    if (!e.altKey || e.ctrlKey || e.metaKey || (e.getModifierState && e.getModifierState("AltGraph"))) return null;
    // macOS types letters with Option (Option+Z is ż on Polish Pro): one the project's
    // alphabet holds is typing, not a key of the page.
    const allowed = ws && ws.text ? ws.text.dataset.allowed || "" : "";
    const plain = /^Key[A-Z]$/.test(e.code) ? e.code.slice(3).toLowerCase() : null;
    const typed = e.key && e.key.length === 1 && /\p{L}/u.test(e.key) && e.key.toLowerCase() !== plain;
    if (typed && allowed.includes(e.key)) return null;
    if (/^Digit[1-4]$/.test(e.code)) {
      const key = e.code.slice(5);
      return () => {
        const button = document.querySelector(`button.flag[data-key="${key}"]`);
        // A click, not requestSubmit(button): htmx sends the value of the clicked button.
        if (button) { ready(button.form); button.click(); }
      };
    }
    return byCode[e.code] || null;
  }

  function openKeys() {
    const dialog = document.getElementById("keys-dialog");
    if (dialog && !dialog.open) dialog.showModal();
  }
  const keysButton = document.getElementById("keys-button");
  if (keysButton) keysButton.addEventListener("click", openKeys);
  const keysClose = document.getElementById("keys-close");
  if (keysClose) keysClose.addEventListener("click", () => document.getElementById("keys-dialog").close());

  document.addEventListener("keydown", (e) => {
    if (!document.getElementById("workspace")) return;
    const dialog = document.getElementById("keys-dialog");
    if (dialog && dialog.open) return; // its own keys: Tab, arrows, Esc
    const action = actionFor(e);
    if (!action) return;
    e.preventDefault();
    // Pressed while the last submission is on its way: it applies to the next clip.
    if (sending) afterSend = action; else action();
  });

  // The server stored the text (its answer says so in an HX-Trigger header): forget the local
  // copy of that lease. A refused text comes back without it, and the copy stays.
  document.body.addEventListener("transcript-saved", (e) => {
    if (e.detail && e.detail.lease) localStorage.removeItem(textKey(e.detail.lease));
  });
  document.body.addEventListener("htmx:beforeSwap", () => {
    if (ws && ws.audio) ws.audio.pause();
  });
  document.body.addEventListener("htmx:sendError", () => {
    const box = document.getElementById("text-errors");
    if (box) {
      box.textContent = "Not sent: the connection dropped. Your text is kept here; press Ctrl+Enter to try again.";
      box.dataset.server = "kept";
    }
  });
  document.body.addEventListener("htmx:responseError", (e) => {
    const box = document.getElementById("text-errors");
    if (box) {
      box.textContent = `Not saved: the server answered ${e.detail.xhr.status}. Your text is kept; try again.`;
      box.dataset.server = "kept";
    }
  });
  document.body.addEventListener("htmx:afterSettle", (e) => {
    sending = false;
    if (e.detail.target && e.detail.target.id === "workspace") setup();
    if (afterSend) { const action = afterSend; afterSend = null; action(); }
  });
  setup();
})();
