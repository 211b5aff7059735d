// The "Relieve pool" admin page: draws the state JSON, polls it every 2 s, and reloads the charts each minute.
(function () {
  "use strict";
  var root = document.getElementById("relieve-pool");
  if (!root) return;
  var STATE_EVERY = 2000;
  var CHARTS_EVERY = 60000;
  var COLUMNS = [
    ["Child", "name"], ["PID", "pid", "num"], ["State", "state"], ["In flight", "in_flight", "num"],
    ["Done", "done", "num"], ["Restarts", "restarts", "num"], ["CPU %", "cpu_percent", "num"],
    ["Memory", "memory", "num"], ["Uptime", "uptime", "num"]
  ];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    var s = Math.floor(seconds), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    var m = Math.floor(s % 3600 / 60), r = s % 60;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (d) return d + "d" + two(h) + "h";
    if (h) return h + "h" + two(m) + "m";
    if (m) return m + "m" + two(r) + "s";
    return r + "s";
  }

  function cell(child, key) {
    var value = child[key];
    if (value === null || value === undefined) return "-";
    if (key === "memory") return (value / 1048576).toFixed(1) + " MiB";
    if (key === "uptime") return duration(value);
    if (key === "cpu_percent") return value.toFixed(1);
    return String(value);
  }

  function childTable(children) {
    var head = el("tr", {}, COLUMNS.map(function (c) { return el("th", {"class": c[2] || ""}, [c[0]]); }));
    var rows = children.map(function (child) {
      return el("tr", {"data-child": child.name}, COLUMNS.map(function (c) {
        var classes = "field-" + c[1] + (c[2] ? " " + c[2] : "") +
          (c[1] === "state" ? " state-" + child.state : "");
        return el("td", {"class": classes}, [cell(child, c[1])]);
      }));
    });
    var table = el("table", {"class": "relieve-children"}, [el("thead", {}, [head]), el("tbody", {}, rows)]);
    return el("div", {"class": "relieve-table-box"}, [table]);  // scrolls alone on a phone
  }

  function drawMasters(state) {
    var box = document.getElementById("relieve-masters");
    box.replaceChildren();
    if (!state.masters.length) return;  // the master-down banner above says so, once
    state.masters.forEach(function (master) {
      box.appendChild(el("h2", {}, ["Master " + master.pid + " on " + master.host]));
      var paused = state.paused || [];
      var queues = master.queues.map(function (queue) {
        var word = (queue.paused || paused.indexOf(queue.name) >= 0) ? "paused, " : "";
        var range = (queue.scale && queue.scale[1] > queue.scale[0]) ? " of " + queue.scale[0] + "-" + queue.scale[1] : "";
        return "Queue " + queue.name + ": " + word + queue.children + (queue.children === 1 ? " child" : " children") + range + " (" + queue.available +
          " taking work), " + queue.queued + " queued" +
          (queue.more_in_table ? " here and more in the database (RELIEVE_MAX_HELD)" : "") +
          ", " + queue.sending + " running.";
      });
      box.appendChild(el("p", {"class": "master-line", "data-master": String(master.pid)}, [
        "Up " + duration(master.uptime) + (master.reloading ? ", reloading its children" : "") +
        ". " + queues.join(" ") + " " + master.retrying + " waiting for their time (a retry's delay, run_after or a rate limit)."
      ]));
      box.appendChild(childTable(master.children));
    });
  }

  function drawCounts(state) {
    var counts = document.getElementById("relieve-counts");
    var recent = document.getElementById("relieve-recent");
    counts.replaceChildren();
    if (!state.outcomes) { recent.textContent = "Unknown: " + state.error; return; }
    Object.keys(state.outcomes).forEach(function (status) {
      counts.appendChild(el("div", {"class": "count", "data-status": status},
        [el("b", {}, [String(state.outcomes[status])]), status]));
    });
    var r = state.recent;
    recent.textContent = "Last minute: " + r.minute.delivered + " delivered, " + r.minute.failed +
      " failed. Last hour: " + r.hour.delivered + " delivered, " + r.hour.failed + " failed.";
  }

  function progressCell(done) {
    if (!done) return el("td", {"class": "field-progress"}, ["-"]);
    var bar = el("progress", done.total ? {value: String(Math.min(done.done, done.total)), max: String(done.total)} : {});
    var amount = done.total ? done.done + " of " + done.total + " (" + Math.round(Math.min(done.done / done.total, 1) * 100) + "%)"
      : done.done + " done";
    return el("td", {"class": "field-progress"}, [bar, " " + amount + (done.note ? ": " + done.note : "")]);
  }

  function drawTasks(state) {
    var fullness = document.getElementById("relieve-fullness");
    var box = document.getElementById("relieve-tasks");
    var full = state.fullness || {};
    fullness.textContent = Object.keys(full).map(function (queue) {
      return "Queue " + queue + ": " + full[queue].ready + " of at most " + full[queue].limit + " ready.";
    }).join(" ");
    box.replaceChildren();
    var running = state.running_tasks || [];
    if (!running.length) { box.appendChild(el("p", {}, ["No task is running."])); return; }
    var head = el("tr", {}, ["Task", "Queue", "Since", "Progress"].map(function (t) { return el("th", {}, [t]); }));
    var rows = running.map(function (task) {
      return el("tr", {"data-task": String(task.id)}, [
        el("td", {}, ["#" + task.id + " " + task.task + (task.detached ? " (" + task.detached + ")" : "")]),
        el("td", {}, [task.queue]),
        el("td", {}, [task.since ? new Date(task.since).toLocaleTimeString() : "-"]), progressCell(task.progress)
      ]);
    });
    box.appendChild(el("table", {"class": "relieve-tasks"}, [el("thead", {}, [head]), el("tbody", {}, rows)]));
  }

  function draw(state) {
    var banner = document.getElementById("relieve-master-down");
    if (banner) banner.hidden = state.masters.length > 0;
    drawMasters(state);
    drawTasks(state);
    drawCounts(state);
    document.getElementById("relieve-updated").textContent = new Date(state.checked_at).toLocaleTimeString();
  }

  function poll() {
    fetch(root.dataset.stateUrl, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(draw)
      .catch(function (error) {
        document.getElementById("relieve-updated").textContent = "unknown (" + error.message + ")";
      })
      .finally(function () { setTimeout(poll, STATE_EVERY); });
  }

  function refreshCharts() {
    fetch(root.dataset.chartsUrl, {credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html) document.getElementById("relieve-charts").innerHTML = html; })
      .catch(function () {})
      .finally(function () { setTimeout(refreshCharts, CHARTS_EVERY); });
  }

  draw(JSON.parse(document.getElementById("relieve-initial-state").textContent));
  setTimeout(poll, STATE_EVERY);
  setTimeout(refreshCharts, CHARTS_EVERY);
})();
