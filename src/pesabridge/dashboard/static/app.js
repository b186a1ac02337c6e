// The dashboard works without JavaScript; this only adds conveniences.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // "Select all" checkboxes in a failure group.
  for (const all of document.querySelectorAll("input[data-select-all]")) {
    all.addEventListener("change", () => {
      const form = all.closest("form");
      for (const box of form.querySelectorAll("input[name=delivery]")) box.checked = all.checked;
    });
  }
  // Ask before replaying or resolving a whole group.
  for (const button of document.querySelectorAll("button[data-confirm]")) {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  }
});
// Search forms leave empty fields out of the URL, so links to a search stay short.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.method !== "get") return;
  for (const field of form.querySelectorAll("input, select")) {
    if (field.name && field.value === "") field.disabled = true;
  }
});
