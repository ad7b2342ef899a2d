(function () {
  "use strict";
  var record = window.tinyqRecord;
  var status = document.getElementById("report-status");
  function done(rendered) {
    status.setAttribute("data-rendered", String(rendered));
    status.setAttribute("data-done", "true");
  }
  var specs;
  try {
    specs = JSON.parse(document.getElementById("report-specs").textContent);
  } catch (e) {
    record("plot specs", e.message);
    return done(0);
  }
  if (typeof vegaEmbed !== "function") {
    record("plotting scripts", "vega-embed did not load");
    return done(0);
  }
  var font = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  var config = {
    font: font,
    background: "#ffffff",
    view: { stroke: null },
    title: { fontSize: 14, fontWeight: 600, color: "#1f2328", subtitleFontSize: 11.5, subtitleColor: "#57606a", subtitlePadding: 4, offset: 12 },
    axis: {
      labelFontSize: 11, titleFontSize: 12, titleFontWeight: 500, labelColor: "#3d444d", titleColor: "#1f2328",
      gridColor: "#eaeef2", domainColor: "#8c959f", tickColor: "#8c959f"
    },
    legend: { labelFontSize: 11.5, titleFontSize: 12, labelLimit: 320 }
  };
  var join = function (args) {
    return Array.prototype.map.call(args, function (a) { return a && a.message ? a.message : String(a); }).join(" ");
  };
  // Vega's warnings (an empty scale, a field that is not there) mean a broken plot: record them.
  var logger = function (name) {
    var level = 2;
    return {
      level: function (l) { if (arguments.length) { level = l; return this; } return level; },
      error: function () { record(name, join(arguments)); return this; },
      warn: function () { record(name + " (warning)", join(arguments)); return this; },
      info: function () { return this; },
      debug: function () { return this; }
    };
  };
  var rendered = 0;
  var jobs = specs.map(function (spec, i) {
    var el = document.getElementById("plot-" + i);
    var name = "plot " + (i + 1) + " (" + ((spec.title && spec.title.text) || "untitled") + ")";
    if (!el) {
      record(name, "no container in the page");
      return Promise.resolve();
    }
    return vegaEmbed(el, spec, { mode: "vega-lite", renderer: "svg", actions: false, ast: true, config: config, logger: logger(name) })
      .then(function () {
        rendered += 1;
        el.setAttribute("data-rendered", "true");
      })
      .catch(function (e) {
        el.setAttribute("data-rendered", "failed");
        el.classList.add("failed");
        el.textContent = "This plot could not be drawn: " + (e.message || e);
        record(name, e.message || String(e));
      });
  });
  Promise.all(jobs).then(function () { done(rendered); });
})();
