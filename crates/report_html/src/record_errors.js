(function () {
  "use strict";
  var box = document.getElementById("report-errors");
  var list = box.querySelector("ul");
  // Anything that keeps the report from rendering completely: shown at the top of the page and
  // read back by the tests from the DOM.
  window.tinyqRecord = function (where, message) {
    var item = document.createElement("li");
    item.textContent = where + ": " + message;
    list.appendChild(item);
    box.hidden = false;
  };
  window.addEventListener("error", function (e) {
    var where = e.filename ? e.filename.split("/").pop() + ":" + e.lineno : "page";
    window.tinyqRecord("script error (" + where + ")", e.message || String(e.error));
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    window.tinyqRecord("unhandled promise rejection", String((e.reason && e.reason.message) || e.reason));
  });
  document.addEventListener("securitypolicyviolation", function (e) {
    window.tinyqRecord("blocked by the page's security policy", e.violatedDirective + " " + (e.blockedURI || ""));
  });
})();
