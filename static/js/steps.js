// The device-type page: "Step 1 of N" counts the steps of the kind now chosen (each radio says how many).
// Without JavaScript the count is that of the kind chosen when the page was made.
document.addEventListener("DOMContentLoaded", () => {
  const counter = document.querySelector("[data-step-count]");
  if (!counter) return;
  for (const radio of document.querySelectorAll("input[name=kind][data-steps]")) {
    radio.addEventListener("change", () => {
      if (radio.checked) counter.textContent = radio.dataset.steps;
    });
  }
});
