// A form with data-confirm asks before it submits. A listener, not an onsubmit attribute:
// the Content-Security-Policy allows no inline script.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
