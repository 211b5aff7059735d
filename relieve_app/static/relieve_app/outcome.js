// The thank-you page follows its message: it asks the status URL until the message is sent or has
// failed, and shows each new state in place. Without JavaScript the page shows the state at load.
(function () {
  "use strict";
  var node = document.getElementById("relieve-status");
  if (!node || node.dataset.final === "true" || !window.fetch) return;
  var delay = 1000; // grows to 10 s while nothing changes, so a stuck message costs little
  var deadline = Date.now() + 30 * 60 * 1000; // a tab left open stops asking after half an hour

  function show(state) {
    if (state.status !== node.dataset.status) delay = 1000;
    node.textContent = state.text;
    node.className = "status status-" + state.status;
    node.dataset.status = state.status;
    node.dataset.final = state.final ? "true" : "false";
  }

  function poll() {
    fetch(node.dataset.statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (state) {
        show(state);
        if (!state.final) later();
      })
      .catch(later);
  }

  function later() {
    if (Date.now() > deadline) return;
    setTimeout(poll, delay);
    delay = Math.min(delay * 1.5, 10000);
  }

  later();
})();
