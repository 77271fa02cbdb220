// The transcription page: waveform, playback and keys that work while typing; the text in
// progress is kept in localStorage until the server has it.
(function () {
  const speedKey = "vernacular:speed";
  const speeds = [0.5, 0.75, 1, 1.25, 1.5, 2];
  let ws = null; // the current workspace's parts
  let sending = false; // a submission is on its way: keys wait for the next clip
  let afterSend = null; // the key action pressed meanwhile

  function textKey(lease) { return `vernacular:text:${lease}`; }

  function drawWaveform(canvas, peaks, position) {
    const ctx = canvas.getContext("2d");
    const { width, height } = canvas;
    ctx.clearRect(0, 0, width, height);
    const mid = height / 2;
    const played = Math.floor(position * peaks.length);
    for (let x = 0; x < peaks.length; x++) {
      const h = Math.max(1, peaks[x] * (height - 8));
      ctx.fillStyle = x < played ? "#2f6f5e" : "#b9c7c1";
      ctx.fillRect(x, mid - h / 2, 1, h);
    }
    ctx.fillStyle = "#1f2328";
    ctx.fillRect(played, 0, 2, height);
  }

  function peaksOf(buffer, columns) {
    const data = buffer.getChannelData(0);
    const step = Math.max(1, Math.floor(data.length / columns));
    const peaks = new Float32Array(columns);
    let max = 0.0001;
    for (let i = 0; i < columns; i++) {
      let peak = 0;
      for (let j = i * step; j < Math.min(data.length, (i + 1) * step); j++) {
        peak = Math.max(peak, Math.abs(data[j]));
      }
      peaks[i] = peak;
      max = Math.max(max, peak);
    }
    return peaks.map((p) => p / max);
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
    const redraw = () => ws.peaks && drawWaveform(canvas, ws.peaks, audio.duration ? audio.currentTime / audio.duration : 0);
    fetch(document.getElementById("player").dataset.audioUrl, { credentials: "same-origin" })
      .then((r) => r.arrayBuffer())
      .then((bytes) => new (window.AudioContext || window.webkitAudioContext)().decodeAudioData(bytes))
      .then((buffer) => { ws.peaks = peaksOf(buffer, canvas.width); redraw(); canvas.dataset.drawn = "true"; })
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
    canvas.addEventListener("click", (e) => {
      if (!audio.duration) return;
      audio.currentTime = (e.offsetX / canvas.clientWidth) * audio.duration;
      audio.play().catch(() => {});
      text.focus();
    });
    // Autoplay when a clip opens; browsers refuse before the first key press on the page.
    audio.play().catch(() => { time.textContent += " · press Ctrl+Space to play"; });
  }

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
    const current = speeds.indexOf(Number(document.getElementById("speed").value));
    setSpeed(speeds[Math.min(speeds.length - 1, Math.max(0, current + direction))]);
  }
  // A key pressed right after a swap can beat htmx to the new form, which would then be sent
  // as a plain page load: make sure htmx has it first (process() skips what it knows).
  function ready(form) {
    if (form && window.htmx) htmx.process(form);
    return form;
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
  // While a submission is on its way, typing would be lost when the answer replaces the box.
  document.body.addEventListener("htmx:beforeRequest", (e) => {
    if (e.target.closest && e.target.closest("#workspace")) sending = true;
    if (e.target.id === "transcript-form" && ws && ws.text) ws.text.readOnly = true;
  });
  document.body.addEventListener("htmx:afterRequest", (e) => {
    // On success the keys wait until the new clip is in place (afterSettle), else free now.
    if (!e.detail.successful) { sending = false; afterSend = null; }
    if (e.target.id === "transcript-form" && ws && ws.text) ws.text.readOnly = false;
  });

  function actionFor(e) {
    if (e.ctrlKey && e.key === "Enter") return () => submitForm("transcript-form");
    if (e.ctrlKey && (e.key === " " || e.code === "Space")) return togglePlay;
    if (!e.altKey) return null;
    if (e.code === "KeyR") return replay;
    if (e.code === "Comma") return () => nudgeSpeed(-1);
    if (e.code === "Period") return () => nudgeSpeed(1);
    if (e.code === "KeyS") return () => submitForm("skip-form");
    if (e.code === "KeyZ") return () => submitForm("undo-form");
    if (e.code === "KeyK") return useAnswerKey;
    if (/^Digit[1-9]$/.test(e.code)) {
      const key = e.code.slice(5);
      return () => {
        const button = document.querySelector(`button.flag[data-key="${key}"]`);
        // A click, not requestSubmit(button): htmx sends the value of the clicked button.
        if (button) { ready(button.form); button.click(); }
      };
    }
    return null;
  }

  document.addEventListener("keydown", (e) => {
    if (!document.getElementById("workspace")) return;
    const action = actionFor(e);
    if (!action) return;
    e.preventDefault();
    // Pressed while the last submission is on its way: it applies to the next clip.
    if (sending) afterSend = action; else action();
  });

  // After a successful swap the server has the text: forget the local copy of that lease.
  document.body.addEventListener("htmx:beforeSwap", (e) => {
    const form = e.detail.requestConfig && e.detail.requestConfig.elt;
    if (form && form.id === "transcript-form" && e.detail.xhr.status === 200 && ws) {
      const lease = ws.root.dataset.lease;
      const sent = e.detail.xhr.responseText;
      // An answer that still shows this lease is a validation error: keep the text.
      if (!sent.includes(`data-lease="${lease}"`)) localStorage.removeItem(textKey(lease));
    }
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
