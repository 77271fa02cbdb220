// The learning curve: test WER and CER (%) against the minutes trained on, one point per round; the
// dashed, lighter line is WER when decoding with the round's lexicon and word LM. The points sit in
// the polled #round-status partial, so the curve is drawn again after each swap of it.
(function () {
  let drawnFrom = null;
  function draw() {
    const data = document.getElementById("curve-points");
    const canvas = document.getElementById("curve");
    if (!data || !canvas || !window.Chart) return;
    if (data.textContent === drawnFrom) return; // the partial came back with the same points
    drawnFrom = data.textContent;
    const points = JSON.parse(data.textContent);
    for (const id of ["curve-box", "curve-help"]) document.getElementById(id).hidden = !points.length;
    document.getElementById("curve-empty").hidden = points.length > 0;
    if (window.vernacularChart) window.vernacularChart.destroy();
    if (!points.length) { window.vernacularChart = null; return; }
    const series = (key, color, label) => ({
      label: label || key.toUpperCase(),
      data: points
        .filter((p) => p[key] !== null && p[key] !== undefined)
        .map((p) => ({ x: p.minutes, y: p[key] * 100, round: p.round, promoted: p.promoted })),
      borderColor: color,
      backgroundColor: points
        .filter((p) => p[key] !== null && p[key] !== undefined)
        .map((p) => (p.promoted ? color : "#ffffff")),
      pointRadius: 5,
      pointHoverRadius: 7,
      borderWidth: 2,
      tension: 0,
    });
    window.vernacularChart = new Chart(canvas, {
      type: "line",
      data: {
        datasets: [
          series("wer", "#2f6f5e"),
          { ...series("wer_lm", "#6fae9c", "WER with lexicon + LM"), borderDash: [6, 4] },
          series("cer", "#b86e00"),
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { type: "linear", title: { display: true, text: "minutes trained on (test and dev are never)" }, beginAtZero: true },
          y: { title: { display: true, text: "error rate (%)" }, beginAtZero: true },
        },
        plugins: {
          // short lines in the legend: a box is filled with the first point's colour (white
          // for an unpromoted round) and a dashed border made it a blot
          legend: { labels: { usePointStyle: true, pointStyle: "line", pointStyleWidth: 30 } },
          tooltip: { callbacks: { label: (c) => `round ${c.raw.round}: ${c.dataset.label} ${c.raw.y.toFixed(1)}%` } },
        },
      },
    });
  }
  draw();
  document.body.addEventListener("htmx:afterSettle", draw);
})();
