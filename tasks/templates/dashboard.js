(function () {
  "use strict";
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  var modelTable = document.getElementById("models");
  var statusSelect = document.getElementById("status-filter");
  var riskSelect = document.getElementById("risk-filter");
  var originalOrder = modelTable ? Array.prototype.slice.call(modelTable.tBodies[0].rows) : [];

  function sortValue(cell, type) {
    if (!cell) { return null; }
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (raw === "") { return null; }
    if (type === "number") { var n = parseFloat(raw); return isNaN(n) ? null : n; }
    if (type === "date") { var t = Date.parse(raw); return isNaN(t) ? null : t; }
    return raw;
  }

  function headers(table) {
    return Array.prototype.slice.call(table.querySelectorAll("thead th[data-key]"));
  }

  function sortTable(table, key, dir) {
    var th = headers(table).filter(function (h) { return h.getAttribute("data-key") === key; })[0];
    if (!th) { return false; }
    var index = th.cellIndex;
    var type = th.getAttribute("data-type") || "text";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
      return { row: row, i: i, v: sortValue(row.cells[index], type) };
    });
    rows.sort(function (a, b) {
      // Empty cells stay at the bottom whichever way the column is sorted.
      if (a.v === null || b.v === null) {
        return a.v === b.v ? a.i - b.i : (a.v === null ? 1 : -1);
      }
      var c = type === "text" ? collator.compare(a.v, b.v) : a.v - b.v;
      return (dir === "desc" ? -c : c) || a.i - b.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
    headers(table).forEach(function (h) {
      if (h === th) { h.setAttribute("aria-sort", dir === "desc" ? "descending" : "ascending"); }
      else { h.removeAttribute("aria-sort"); }
    });
    table.setAttribute("data-sort-key", key);
    table.setAttribute("data-sort-dir", dir);
    return true;
  }

  function unsort(table) {
    var body = table.tBodies[0];
    originalOrder.forEach(function (row) { body.appendChild(row); });
    headers(table).forEach(function (h) { h.removeAttribute("aria-sort"); });
    table.removeAttribute("data-sort-key");
    table.removeAttribute("data-sort-dir");
  }

  function applyFilters() {
    if (!modelTable) { return; }
    var status = statusSelect ? statusSelect.value : "";
    var risk = riskSelect ? riskSelect.value : "";
    var rows = modelTable.querySelectorAll("tbody tr.model-row");
    var shown = 0;
    Array.prototype.forEach.call(rows, function (row) {
      var states = (row.getAttribute("data-statuses") || "").split(" ");
      var visible = (!status || states.indexOf(status) >= 0) &&
        (!risk || row.getAttribute("data-risk") === risk);
      row.hidden = !visible;
      if (visible) { shown += 1; }
    });
    var count = document.getElementById("visible-count");
    if (count) { count.textContent = shown + " of " + rows.length + " models"; }
    var none = document.getElementById("no-match");
    if (none) { none.hidden = shown !== 0 || rows.length === 0; }
  }

  function hasOption(select, value) {
    return !!select && value !== null &&
      Array.prototype.some.call(select.options, function (o) { return o.value === value; });
  }

  function readState() {
    var text = location.hash.replace(/^#/, "") || location.search.replace(/^\?/, "");
    return new URLSearchParams(text);
  }

  function applyState() {
    var params = readState();
    [[statusSelect, "status"], [riskSelect, "risk"]].forEach(function (pair) {
      var value = params.get(pair[1]);
      if (pair[0]) { pair[0].value = hasOption(pair[0], value) ? value : ""; }
    });
    if (modelTable) {
      var match = /^(.*?)(?:-(asc|desc))?$/.exec(params.get("sort") || "");
      if (!match[1] || !sortTable(modelTable, match[1], match[2] || "asc")) { unsort(modelTable); }
    }
    applyFilters();
  }

  function writeState() {
    var params = new URLSearchParams();
    var key = modelTable.getAttribute("data-sort-key");
    if (key) { params.set("sort", key + "-" + modelTable.getAttribute("data-sort-dir")); }
    if (statusSelect && statusSelect.value) { params.set("status", statusSelect.value); }
    if (riskSelect && riskSelect.value) { params.set("risk", riskSelect.value); }
    var text = params.toString();
    try {
      history.replaceState(null, "", text ? "#" + text : location.pathname + location.search);
    } catch (e) {
      // Some browsers refuse history updates on file: pages; the view itself is already updated.
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    headers(table).forEach(function (th) {
      // Buttons are added here, not in the HTML, so a page without JavaScript shows no dead controls.
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (th.firstChild) { button.appendChild(th.firstChild); }
      th.appendChild(button);
      button.addEventListener("click", function () {
        var key = th.getAttribute("data-key");
        var again = table.getAttribute("data-sort-key") === key &&
          table.getAttribute("data-sort-dir") === "asc";
        sortTable(table, key, again ? "desc" : "asc");
        if (table === modelTable) { writeState(); }
      });
    });
  });

  var toolbar = document.getElementById("filters");
  if (toolbar) { toolbar.hidden = false; }
  [statusSelect, riskSelect].forEach(function (select) {
    if (select) { select.addEventListener("change", function () { applyFilters(); writeState(); }); }
  });
  window.addEventListener("hashchange", applyState);
  if (modelTable) { applyState(); }
}());
