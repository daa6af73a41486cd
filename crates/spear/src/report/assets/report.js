"use strict";
(function () {
  function data(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  var RUNS = data("report-runs") || [];
  var CHARTS = data("chart-data") || [];
  var TRAJ = data("trajectory-data") || [];

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (Number.isInteger(v)) return String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
    return String(+v.toPrecision(4));
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function swatch(run) {
    var s = el("span", "swatch");
    s.style.background = RUNS[run] ? RUNS[run].color : "#999";
    return s;
  }

  // ---- chart hover: nearest iteration, every run's value there ----
  var tip = document.getElementById("tooltip");
  function nearest(p, x) {
    var lo = 0, hi = p.length - 1;
    while (hi - lo > 1) {
      var m = (lo + hi) >> 1;
      if (p[m][0] < x) lo = m; else hi = m;
    }
    return Math.abs(p[lo][0] - x) <= Math.abs(p[hi][0] - x) ? lo : hi;
  }
  Array.prototype.forEach.call(document.querySelectorAll("svg.chart"), function (svg) {
    var d = CHARTS[+svg.getAttribute("data-chart")];
    var line = svg.querySelector("line.hover");
    if (!d || !line || !tip) return;
    var vbw = svg.viewBox.baseVal.width;
    svg.addEventListener("mousemove", function (e) {
      var r = svg.getBoundingClientRect();
      var sx = (e.clientX - r.left) * vbw / r.width;
      var x = d.x[0] + (sx - d.px[0]) / (d.px[1] - d.px[0]) * (d.x[1] - d.x[0]);
      var best = null;
      d.s.forEach(function (s) {
        if (!s.p.length) return;
        var px = s.p[nearest(s.p, x)][0];
        if (best === null || Math.abs(px - x) < Math.abs(best - x)) best = px;
      });
      if (best === null) return;
      var lx = d.px[0] + (best - d.x[0]) / (d.x[1] - d.x[0]) * (d.px[1] - d.px[0]);
      line.setAttribute("x1", lx);
      line.setAttribute("x2", lx);
      line.setAttribute("visibility", "visible");
      tip.textContent = "";
      tip.appendChild(el("div", "", "iteration " + fmt(best)));
      d.s.forEach(function (s) {
        if (!s.p.length) return;
        var i = nearest(s.p, best);
        if (s.p[i][0] !== best) return;
        var row = el("div", "row");
        row.appendChild(swatch(s.r));
        row.appendChild(el("span", "", RUNS[s.r] ? RUNS[s.r].name : "run " + s.r));
        var txt = fmt(s.p[i][1]);
        if (s.b && s.b[i]) txt += "  [" + fmt(s.b[i][0]) + ", " + fmt(s.b[i][1]) + "]";
        row.appendChild(el("span", "v", txt));
        tip.appendChild(row);
      });
      tip.hidden = false;
      var tx = e.clientX + 14, ty = e.clientY + 14;
      if (tx + tip.offsetWidth > window.innerWidth - 8) tx = e.clientX - tip.offsetWidth - 14;
      if (ty + tip.offsetHeight > window.innerHeight - 8) ty = e.clientY - tip.offsetHeight - 14;
      tip.style.left = tx + "px";
      tip.style.top = ty + "px";
    });
    svg.addEventListener("mouseleave", function () {
      line.setAttribute("visibility", "hidden");
      tip.hidden = true;
    });
  });

  // ---- smoothing of the training curves: debiased EMA (TensorBoard's) over each series ----
  var slider = document.getElementById("smoothing");
  function smooth(p, w) {
    var last = 0, out = [];
    p.forEach(function (pt, n) {
      last = last * w + (1 - w) * pt[1];
      out.push([pt[0], w > 0 ? last / (1 - Math.pow(w, n + 1)) : pt[1]]);
    });
    return out;
  }
  function applySmoothing(w) {
    Array.prototype.forEach.call(document.querySelectorAll("#curves svg.chart"), function (svg) {
      var d = CHARTS[+svg.getAttribute("data-chart")];
      if (!d || !d.y) return;
      svg.classList.toggle("smoothed", w > 0);
      Array.prototype.forEach.call(svg.querySelectorAll("path.line.smooth"), function (p) { p.remove(); });
      Array.prototype.forEach.call(svg.querySelectorAll("path.line[data-s]"), function (raw) {
        raw.classList.toggle("faded", w > 0);
        if (w <= 0) return;
        var s = d.s[+raw.getAttribute("data-s")];
        var path = smooth(s.p, w).map(function (pt, i) {
          var x = d.px[0] + (pt[0] - d.x[0]) / (d.x[1] - d.x[0]) * (d.px[1] - d.px[0]);
          var y = d.py[0] + (pt[1] - d.y[0]) / (d.y[1] - d.y[0]) * (d.py[1] - d.py[0]);
          return (i ? "L" : "M") + x.toFixed(1) + "," + y.toFixed(1);
        }).join("");
        var sm = raw.cloneNode(false); // an SVG path of the same colour, without its <title>
        sm.setAttribute("class", "line smooth");
        sm.removeAttribute("data-s");
        sm.setAttribute("d", path);
        raw.parentNode.insertBefore(sm, raw.nextSibling);
      });
    });
  }
  if (slider) {
    slider.addEventListener("input", function () {
      var w = +slider.value;
      document.getElementById("smoothing-value").textContent = w.toFixed(2);
      applySmoothing(w);
    });
  }

  // ---- trajectory viewer ----
  var runSel = document.getElementById("tv-run");
  if (!runSel) return;
  var iterSel = document.getElementById("tv-iter");
  var typeSel = document.getElementById("tv-type");
  var taskSel = document.getElementById("tv-task");
  var outSel = document.getElementById("tv-outcome");
  var list = document.getElementById("tv-episodes");
  var pane = document.getElementById("tv-episode");
  var count = document.getElementById("tv-count");
  var state = { run: -1, file: -1, episode: -1 };

  function option(sel, value, text) {
    var o = el("option", "", text);
    o.value = String(value);
    sel.appendChild(o);
  }
  function currentFile() {
    var t = TRAJ[state.run];
    return t && t.files[state.file] ? t.files[state.file] : null;
  }

  TRAJ.forEach(function (t, i) {
    if (t && t.files && t.files.length) option(runSel, i, RUNS[i] ? RUNS[i].name : "run " + i);
  });
  runSel.parentElement.hidden = runSel.options.length < 2;

  function selectRun(i) {
    state.run = i;
    iterSel.textContent = "";
    var files = TRAJ[i].files;
    files.forEach(function (f, j) {
      var shown = f.episodes.length < f.total ? ", " + f.episodes.length + " shown" : "";
      option(iterSel, j, "iteration " + f.iteration + " (" + f.won + "/" + f.total + " won" + shown + ")");
    });
    iterSel.value = String(files.length - 1);
    selectFile(files.length - 1);
  }
  function selectFile(j) {
    state.file = j;
    var f = currentFile();
    var types = {};
    f.episodes.forEach(function (e) { types[e.task_type] = true; });
    var prev = typeSel.value;
    typeSel.textContent = "";
    option(typeSel, "", "all");
    Object.keys(types).sort().forEach(function (t) { option(typeSel, t, t); });
    typeSel.value = types[prev] ? prev : "";
    fillTasks();
    renderList(true);
  }
  function fillTasks() {
    var f = currentFile();
    var type = typeSel.value, prev = taskSel.value, tasks = {};
    f.episodes.forEach(function (e) {
      if ((!type || e.task_type === type) && !tasks.hasOwnProperty(e.task)) tasks[e.task] = e.task_type;
    });
    taskSel.textContent = "";
    option(taskSel, "", "all");
    Object.keys(tasks).sort(function (a, b) { return a - b; }).forEach(function (t) {
      option(taskSel, t, "task " + t + " (" + tasks[t] + ")");
    });
    taskSel.value = tasks.hasOwnProperty(prev) ? prev : "";
  }
  function visible() {
    var f = currentFile();
    var type = typeSel.value, task = taskSel.value, out = outSel.value;
    var idx = [];
    f.episodes.forEach(function (e, k) {
      if (type && e.task_type !== type) return;
      if (task !== "" && String(e.task) !== task) return;
      if (out === "won" && !e.won) return;
      if (out === "lost" && e.won) return;
      idx.push(k);
    });
    return idx;
  }
  function renderList(pickFirst) {
    var f = currentFile();
    var idx = visible();
    list.textContent = "";
    count.textContent = idx.length + " of " + f.episodes.length + " episodes" +
      (f.episodes.length < f.total ? " (file has " + f.total + ")" : "");
    idx.forEach(function (k) {
      var e = f.episodes[k];
      var tr = el("tr");
      tr.setAttribute("data-episode", String(k));
      tr.appendChild(el("td", "num", String(k)));
      tr.appendChild(el("td", "num", String(e.task)));
      tr.appendChild(el("td", "", e.task_type));
      var g = el("td", "goal", e.goal);
      g.title = e.goal;
      tr.appendChild(g);
      tr.appendChild(el("td", e.won ? "won" : "lost", e.won ? "✓" : "✗"));
      tr.appendChild(el("td", "num", fmt(e.reward)));
      tr.appendChild(el("td", "num", fmt(e.score)));
      tr.appendChild(el("td", "num", String(e.turns.length)));
      tr.addEventListener("click", function () { showEpisode(k); });
      list.appendChild(tr);
    });
    if (pickFirst || idx.indexOf(state.episode) < 0) {
      if (idx.length) showEpisode(idx[0]);
      else { state.episode = -1; pane.textContent = ""; pane.appendChild(el("p", "none", "No episode matches the filters.")); }
    } else {
      markSelected();
    }
  }
  function markSelected() {
    Array.prototype.forEach.call(list.children, function (tr) {
      tr.classList.toggle("selected", tr.getAttribute("data-episode") === String(state.episode));
    });
  }
  function block(cls, label, text) {
    var d = el("div", cls);
    d.appendChild(el("div", "lbl", label));
    d.appendChild(el("pre", "", text));
    return d;
  }
  function collapsible(summary, text) {
    var d = el("details");
    d.appendChild(el("summary", "", summary));
    d.appendChild(el("pre", "", text));
    return d;
  }
  function showEpisode(k) {
    state.episode = k;
    markSelected();
    var e = currentFile().episodes[k];
    pane.textContent = "";
    var head = el("div", "ep-head");
    head.appendChild(el("h4", "", e.goal || "(no goal text)"));
    head.appendChild(el("div", "meta",
      "task " + e.task + " · " + e.task_type + " · group " + e.group + " · trajectory " + e.traj +
      " · " + (e.won ? "won" : "lost") + " · reward " + fmt(e.reward) + " · score " + fmt(e.score) +
      " · " + e.turns.length + " turns"));
    pane.appendChild(head);
    if (!e.turns.length) pane.appendChild(el("p", "none", "This episode has no recorded turns."));
    e.turns.forEach(function (t, n) {
      var card = el("div", "turn " + (t.valid ? "valid" : "invalid"));
      var h = el("div", "turn-head");
      h.appendChild(el("span", "turn-n", "Turn " + (n + 1)));
      h.appendChild(el("span", "badge " + (t.valid ? "ok" : "bad"), t.valid ? "valid" : "invalid"));
      if (t.masked) h.appendChild(el("span", "badge masked", "masked"));
      h.appendChild(el("span", "num", "reward " + fmt(t.reward)));
      h.appendChild(el("span", "num", "advantage " + (t.advantage === null || t.advantage === undefined ? "–" : fmt(t.advantage))));
      card.appendChild(h);
      card.appendChild(collapsible("Prompt (" + t.prompt.length + " characters)", t.prompt));
      if (t.think) card.appendChild(block("think", "Thinking", t.think));
      var a = el("div", "action");
      a.appendChild(el("div", "lbl", "Action"));
      a.appendChild(el("code", "", t.action || "(none)"));
      card.appendChild(a);
      card.appendChild(block("obs", "Observation", t.observation));
      card.appendChild(collapsible("Raw response", t.response));
      pane.appendChild(card);
    });
  }

  runSel.addEventListener("change", function () { selectRun(+runSel.value); });
  iterSel.addEventListener("change", function () { selectFile(+iterSel.value); });
  typeSel.addEventListener("change", function () { fillTasks(); renderList(false); });
  taskSel.addEventListener("change", function () { renderList(false); });
  outSel.addEventListener("change", function () { renderList(false); });
  if (runSel.options.length) selectRun(+runSel.options[0].value);
})();
