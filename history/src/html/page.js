"use strict";
// Draws the history embedded in #rift-data. Everything is computed here from that one
// JSON object, and what was drawn is written back into #summary's data attributes.
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    errors.push(String(e.message || e));
    var s = document.getElementById("summary");
    if (s) { s.setAttribute("data-errors", String(errors.length)); }
  });

  var SVG = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("rift-data").textContent);
  var LABEL_W = 170, AXIS_H = 22, FAULT_H = 16, MARK_H = 16;
  var MEMBER_H = 18, OP_H = 16, BAR_H = 10;

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    for (var k in attrs) { node.setAttribute(k, attrs[k]); }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function text(parent, x, y, s, cls) {
    var t = el("text", { x: x, y: y }, parent);
    if (cls) { t.setAttribute("class", cls); }
    t.textContent = s;
    return t;
  }
  function title(node, s) { el("title", {}, node).textContent = s; }
  function html(tag, attrs, parent, content) {
    var node = document.createElement(tag);
    for (var k in attrs) { node.setAttribute(k, attrs[k]); }
    if (content !== undefined) { node.textContent = content; }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function fmtTime(t) {
    if (data.unit === "line") { return "line " + t; }
    return (t / 1e9).toFixed(3) + " s";
  }
  function fmtSpan(d) {
    if (data.unit === "line") { return d + " lines"; }
    if (d < 1e6) { return (d / 1e3).toFixed(1) + " µs"; }
    if (d < 1e9) { return (d / 1e6).toFixed(1) + " ms"; }
    return (d / 1e9).toFixed(2) + " s";
  }
  function niceStep(raw) {
    var p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    var m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  // Evidence for the selected key: op id -> role.
  var selectedKey = null;
  var evidenceByKey = {};
  if (data.check) {
    data.check.keys.forEach(function (k) { evidenceByKey[k.key] = k; });
    var firstFail = data.check.keys.filter(function (k) { return k.verdict === "FAIL"; })[0];
    if (firstFail) { selectedKey = firstFail.key; }
  }
  var processes = Array.from(new Set(data.ops.map(function (o) { return o.process; })))
    .sort(function (a, b) { return a - b; });
  var laneOf = {};
  processes.forEach(function (p, i) { laneOf[p] = i; });
  var counts = { ok: 0, fail: 0, info: 0, pending: 0 };
  data.ops.forEach(function (o) { counts[o.outcome] = (counts[o.outcome] || 0) + 1; });

  var zoom = 1;
  var opNodes = {};

  function draw() {
    var container = document.getElementById("timeline");
    container.textContent = "";
    opNodes = {};
    var span = Math.max(1, data.end - data.start);
    var baseW = Math.max(900, Math.min(24000, data.ops.length * 5));
    var width = Math.round(baseW * zoom);
    var x = function (t) { return 6 + ((t - data.start) / span) * (width - 12); };
    var top = AXIS_H + FAULT_H + MARK_H;
    var membersTop = top;
    var isrTop = membersTop + data.members.length * MEMBER_H;
    var opsTop = isrTop + data.isr.length * MEMBER_H + 6;
    var height = opsTop + processes.length * OP_H + 8;

    var labels = el("svg", { width: LABEL_W, height: height, id: "labels" });
    var scroller = document.createElement("div");
    scroller.id = "scroller";
    var svg = el("svg", { width: width, height: height, id: "chart" });
    container.appendChild(labels);
    container.appendChild(scroller);
    scroller.appendChild(svg);

    // Axis.
    var axis = el("g", { "class": "axis" }, svg);
    var step = niceStep(span / Math.max(1, width / 110));
    for (var t = Math.ceil(data.start / step) * step; t <= data.end; t += step) {
      el("line", { x1: x(t), x2: x(t), y1: AXIS_H - 6, y2: height }, axis)
        .setAttribute("stroke-opacity", "0.35");
      text(axis, x(t) + 2, AXIS_H - 9, fmtTime(t));
    }
    text(labels, 6, AXIS_H - 9, data.unit === "line" ? "log line" : "time since start");
    text(labels, 6, AXIS_H + FAULT_H - 4, "faults");
    text(labels, 6, AXIS_H + FAULT_H + MARK_H - 4, "markers");

    // Fault windows across every lane.
    data.faults.forEach(function (f) {
      var end = f.end === null || f.end === undefined ? data.end : f.end;
      var r = el("rect", {
        "class": "fault", x: x(f.start), y: AXIS_H, height: height - AXIS_H,
        width: Math.max(2, x(end) - x(f.start)),
      }, svg);
      title(r, f.label + ": " + fmtTime(f.start) + " → " +
        (f.end === null || f.end === undefined ? "never healed" : fmtTime(f.end)) +
        " (" + fmtSpan(end - f.start) + ")");
      text(svg, x(f.start) + 3, AXIS_H + FAULT_H - 4, f.label, "fault-label");
    });

    // Markers: phases and checker timings.
    data.markers.forEach(function (m) {
      var g = el("g", { "class": "marker" }, svg);
      el("line", { x1: x(m.time), x2: x(m.time), y1: AXIS_H + FAULT_H, y2: height }, g);
      text(g, x(m.time) + 2, AXIS_H + FAULT_H + MARK_H - 4, m.label);
      title(g, m.label + " at " + fmtTime(m.time));
    });

    function segLanes(lanes, y0, prefix) {
      lanes.forEach(function (lane, i) {
        var y = y0 + i * MEMBER_H;
        text(labels, 6, y + 13, prefix + lane.label);
        lane.segments.forEach(function (s) {
          var w = Math.max(1, x(s.end) - x(s.start));
          var r = el("rect", { "class": "seg " + s.role, x: x(s.start), y: y + 2, width: w, height: MEMBER_H - 4 }, svg);
          title(r, lane.label + ": " + s.text + " from " + fmtTime(s.start) + " to " + fmtTime(s.end));
          if (w > 60) {
            text(svg, x(s.start) + 3, y + 13, s.text, "seg-text" + (s.role === "leader" || s.role === "down" ? " light" : ""));
          }
        });
      });
    }
    segLanes(data.members, membersTop, "");
    segLanes(data.isr, isrTop, "ISR ");

    // One lane per client process.
    processes.forEach(function (p, i) {
      var y = opsTop + i * OP_H;
      if (i % 2 === 0) { el("rect", { "class": "lane-bg", x: 0, y: y, width: width, height: OP_H }, svg); }
      text(labels, 6, y + 12, "process " + p);
    });
    var ev = selectedKey === null ? null : evidenceByKey[selectedKey];
    var stepOf = {}, cand = {}, stuck = null;
    if (ev) {
      ev.linearized.forEach(function (s, i) { stepOf[s.id] = i + 1; });
      ev.candidates.forEach(function (c) { cand[c.id] = c.reason; });
      stuck = ev.stuck === undefined ? null : ev.stuck;
    }
    var lastSteps = ev ? ev.linearized.length - 10 : 0;
    var drawn = 0;
    data.ops.forEach(function (o) {
      var y = opsTop + laneOf[o.process] * OP_H + (OP_H - BAR_H) / 2;
      var end = o.ret === null || o.ret === undefined ? data.end : o.ret;
      var x0 = x(o.call), x1 = Math.max(x0 + 2, x(end));
      var cls = "op " + o.outcome;
      var dim = selectedKey !== null && (o.key === undefined ? "" : o.key) !== selectedKey;
      if (dim) { cls += " dim"; }
      if (!dim && stepOf[o.id] !== undefined) { cls += " lin"; }
      if (!dim && cand[o.id] !== undefined) { cls += " cand"; }
      if (!dim && o.id === stuck) { cls += " stuck"; }
      var r = el("rect", { "class": cls, x: x0, y: y, width: x1 - x0, height: BAR_H, "data-id": o.id }, svg);
      drawn += 1;
      opNodes[o.id] = r;
      if ((o.outcome === "info" || o.outcome === "pending") && end < data.end) {
        el("line", { "class": "tail " + o.outcome + (dim ? " dim" : ""), x1: x1, x2: x(data.end), y1: y + BAR_H / 2, y2: y + BAR_H / 2 }, svg);
      }
      var lines = ["process " + o.process + " · " + o.describe + " · " + o.outcome];
      var where = [];
      if (o.key !== undefined) { where.push("key " + o.key); }
      if (o.node !== undefined) { where.push("node " + o.node); }
      if (o.consistency !== undefined) { where.push(o.consistency); }
      if (where.length) { lines.push(where.join(" · ")); }
      lines.push(fmtTime(o.call) + " → " + (o.ret === null || o.ret === undefined ? "never completed" : fmtTime(o.ret) + " (" + fmtSpan(o.ret - o.call) + ")"));
      if (o.error !== undefined) { lines.push("error: " + o.error); }
      if (!dim && stepOf[o.id] !== undefined) { lines.push("step " + stepOf[o.id] + " of the longest partial linearization"); }
      if (!dim && cand[o.id] !== undefined) { lines.push("cannot come next: " + cand[o.id]); }
      title(r, lines.join("\n"));
      if (!dim && stepOf[o.id] !== undefined && stepOf[o.id] > lastSteps) {
        text(svg, x0, y - 1, String(stepOf[o.id]), "step");
      }
    });
    return drawn;
  }

  function flash(id) {
    var node = opNodes[id];
    if (!node) { return; }
    node.scrollIntoView({ block: "nearest", inline: "center" });
    node.classList.add("flash");
    setTimeout(function () { node.classList.remove("flash"); }, 1200);
  }

  function opById() {
    var m = {};
    data.ops.forEach(function (o) { m[o.id] = o; });
    return m;
  }

  function evidence() {
    var box = document.getElementById("evidence");
    box.textContent = "";
    if (!data.check) { return; }
    var ops = opById();
    var h = html("h2", {}, box, "Linearizability: ");
    html("span", { "class": "verdict-" + data.check.verdict }, h, data.check.verdict);
    html("p", {}, box, "checked in " + fmtSpanNs(data.check.elapsed_ns) + "; " + data.check.keys.length + " key(s)");
    var table = html("table", {}, box);
    var head = html("tr", {}, table);
    ["key", "operations", "verdict"].forEach(function (c) { html("th", {}, head, c); });
    data.check.keys.forEach(function (k) {
      var row = html("tr", { "class": "clickable" }, table);
      html("td", {}, row, k.key === "" ? "(no key)" : k.key);
      html("td", {}, row, String(k.ops));
      html("td", { "class": "verdict-" + k.verdict }, row, k.verdict + (k.reason ? ": " + k.reason : ""));
      row.addEventListener("click", function () { select(k.key); });
    });
    var ev = selectedKey === null ? null : evidenceByKey[selectedKey];
    if (!ev || ev.verdict !== "FAIL") { return; }
    html("h2", {}, box, "Key " + JSON.stringify(ev.key) + ": longest partial linearization (" + ev.linearized.length + " operations)");
    var shown = 30;
    var steps = html("table", {}, box);
    var sh = html("tr", {}, steps);
    ["step", "process", "operation", "called", "returned", "register after"].forEach(function (c) { html("th", {}, sh, c); });
    var from = Math.max(0, ev.linearized.length - shown);
    if (from > 0) {
      var more = html("tr", {}, steps);
      html("td", { colspan: 6 }, more, "… " + from + " earlier steps (hover the blue bars)");
    }
    ev.linearized.slice(from).forEach(function (s, i) {
      var o = ops[s.id];
      var row = html("tr", { "class": "clickable" }, steps);
      html("td", {}, row, String(from + i + 1));
      html("td", {}, row, o ? String(o.process) : "?");
      html("td", {}, row, o ? o.describe + (o.outcome === "ok" ? "" : " [" + o.outcome + "]") : "entry " + s.id);
      html("td", {}, row, o ? fmtTime(o.call) : "");
      html("td", {}, row, o && o.ret !== null && o.ret !== undefined ? fmtTime(o.ret) : "—");
      html("td", {}, row, s.state);
      row.addEventListener("click", function () { flash(s.id); });
    });
    html("h2", {}, box, "Then the register holds " + ev.state + ", and no operation can come next");
    var ct = html("table", {}, box);
    var chh = html("tr", {}, ct);
    ["process", "operation", "called", "returned", "why not"].forEach(function (c) { html("th", {}, chh, c); });
    ev.candidates.forEach(function (c) {
      var o = ops[c.id];
      var row = html("tr", { "class": "clickable" + (c.id === ev.stuck ? " stuck" : "") }, ct);
      html("td", {}, row, o ? String(o.process) : "?");
      html("td", {}, row, o ? o.describe : "entry " + c.id);
      html("td", {}, row, o ? fmtTime(o.call) : "");
      html("td", {}, row, o && o.ret !== null && o.ret !== undefined ? fmtTime(o.ret) : "—");
      html("td", {}, row, c.reason + (c.id === ev.stuck ? " (it returned before taking effect)" : ""));
      row.addEventListener("click", function () { flash(c.id); });
    });
  }
  function fmtSpanNs(ns) {
    if (ns < 1e6) { return (ns / 1e3).toFixed(1) + " µs"; }
    if (ns < 1e9) { return (ns / 1e6).toFixed(1) + " ms"; }
    return (ns / 1e9).toFixed(2) + " s";
  }

  function summary(drawn) {
    var s = document.getElementById("summary");
    s.setAttribute("data-ops", String(data.ops.length));
    s.setAttribute("data-drawn-ops", String(drawn));
    s.setAttribute("data-faults", String(data.faults.length));
    s.setAttribute("data-processes", String(processes.length));
    s.setAttribute("data-members", String(data.members.length));
    s.setAttribute("data-errors", String(errors.length));
    s.setAttribute("data-verdict", data.check ? data.check.verdict : "");
    s.textContent = data.ops.length + " operations (" + counts.ok + " ok, " + counts.fail + " fail, " +
      counts.info + " info, " + counts.pending + " never completed) from " + processes.length +
      " processes · " + data.faults.length + " fault window" + (data.faults.length === 1 ? "" : "s") +
      (data.check ? " · linearizability " + data.check.verdict : "");
  }

  function select(key) {
    selectedKey = key;
    var picker = document.getElementById("key-picker");
    if (picker) { picker.value = key === null ? "" : "k:" + key; }
    summary(draw());
    evidence();
  }

  function controls() {
    var box = document.getElementById("controls");
    var legend = html("div", { "class": "legend" }, box);
    [["ok", "#2e7d32"], ["fail", "#c62828"], ["info (indeterminate)", "#ef6c00"], ["never completed", "#8e24aa"],
     ["fault window", "rgba(230,120,20,0.35)"]].forEach(function (c) {
      var span = html("span", {}, legend);
      html("span", { "class": "swatch", style: "background:" + c[1] }, span);
      span.appendChild(document.createTextNode(c[0]));
    });
    var zl = html("label", {}, box, "zoom ");
    var z = html("input", { type: "range", min: "0", max: "6", step: "1", value: "0" }, zl);
    z.addEventListener("input", function () { zoom = Math.pow(2, Number(z.value)); summary(draw()); });
    var keys = Array.from(new Set(data.ops.map(function (o) { return o.key === undefined ? "" : o.key; }))).sort();
    if (keys.length > 1 || data.check) {
      var kl = html("label", {}, box, "key ");
      var sel = html("select", { id: "key-picker" }, kl);
      html("option", { value: "" }, sel, "all keys");
      keys.forEach(function (k) { html("option", { value: "k:" + k }, sel, k === "" ? "(no key)" : k); });
      sel.value = selectedKey === null ? "" : "k:" + selectedKey;
      sel.addEventListener("change", function () { select(sel.value === "" ? null : sel.value.slice(2)); });
    }
  }

  controls();
  summary(draw());
  evidence();
})();
