// The portal's only script: progressive enhancement, no build step. Every page works without it.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function debounce(fn, ms) {
    var timer;
    return function () {
      var args = arguments;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(null, args); }, ms);
    };
  }

  // --- Identifier validation as you type -------------------------------------------------------
  function wireIdentifierRow(row, checkUrl) {
    var scheme = row.querySelector("select");
    var value = row.querySelector("input[type=text]");
    var out = row.querySelector(".check-message");
    if (!scheme || !value || !out) return;
    var describedBy = (value.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    if (describedBy.indexOf(out.id) < 0) describedBy.push(out.id);
    value.setAttribute("aria-describedby", describedBy.join(" "));
    var check = debounce(function () {
      if (!value.value.trim() || !scheme.value) { out.textContent = ""; out.className = "check-message"; return; }
      var url = checkUrl + "?scheme=" + encodeURIComponent(scheme.value) + "&value=" + encodeURIComponent(value.value);
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          out.textContent = data.message || "";
          if (data.claim_url) {
            // A taken identifier: the way on is claiming a share of the work that holds it.
            var link = document.createElement("a");
            link.href = data.claim_url;
            link.textContent = data.claim_label;
            out.appendChild(document.createTextNode(" "));
            out.appendChild(link);
          }
          out.className = "check-message " + (data.valid === true && !data.taken ? "valid" : data.valid === null ? "" : "invalid");
        })
        .catch(function () { out.textContent = ""; });
    }, 300);
    value.addEventListener("input", check);
    scheme.addEventListener("change", check);
  }

  function setupIdentifiers() {
    var container = document.querySelector("[data-identifiers]");
    if (!container) return;
    var checkUrl = container.getAttribute("data-check-url");
    container.querySelectorAll(".identifier-row").forEach(function (row) { wireIdentifierRow(row, checkUrl); });
    var add = document.querySelector("[data-add-identifier]");
    var template = document.getElementById("identifier-empty");
    var total = document.querySelector("input[name$='-TOTAL_FORMS']");
    function addRow(schemeValue, valueValue) {
      var index = parseInt(total.value, 10);
      var html = template.innerHTML.replace(/__prefix__/g, String(index));
      var wrapper = document.createElement("div");
      wrapper.innerHTML = html.trim();
      var row = wrapper.firstElementChild;
      container.appendChild(row);
      total.value = String(index + 1);
      wireIdentifierRow(row, checkUrl);
      if (schemeValue) row.querySelector("select").value = schemeValue;
      var input = row.querySelector("input[type=text]");
      if (valueValue) { input.value = valueValue; input.dispatchEvent(new Event("input")); }
      return input;
    }
    if (add && template && total) {
      add.hidden = false;
      add.addEventListener("click", function () { addRow().focus(); });
    }
    container.addIdentifier = addRow;
  }

  // --- SHA-256 of a file in the browser: the file never leaves the computer ---------------------------
  function hex(buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function setupFingerprint() {
    document.querySelectorAll("[data-fingerprint]").forEach(function (box) {
      box.hidden = false;
      var input = box.querySelector("input[type=file]");
      var out = box.querySelector(".fingerprint-result");
      input.addEventListener("change", function () {
        var file = input.files && input.files[0];
        if (!file) return;
        if (!(window.crypto && window.crypto.subtle)) { out.textContent = box.getAttribute("data-unsupported"); return; }
        out.textContent = box.getAttribute("data-working");
        file.arrayBuffer().then(function (data) { return window.crypto.subtle.digest("SHA-256", data); }).then(function (digest) {
          var value = hex(digest);
          out.textContent = box.getAttribute("data-done") + " " + value;
          var targetSelector = box.getAttribute("data-fingerprint");
          var identifiers = document.querySelector("[data-identifiers]");
          if (targetSelector === "identifiers" && identifiers && identifiers.addIdentifier) {
            identifiers.addIdentifier("sha256", value);
          } else {
            var form = document.querySelector(targetSelector);
            if (form) { form.querySelector("select").value = "sha256"; form.querySelector("input[type=text]").value = value; }
          }
        }).catch(function () { out.textContent = box.getAttribute("data-unsupported"); });
      });
    });
  }

  // --- Progress bars that follow work done in the worker ------------------------------------------
  function setupProgress() {
    document.querySelectorAll("[data-progress-url]").forEach(function (box) {
      var url = box.getAttribute("data-progress-url");
      var bar = box.querySelector("progress");
      var text = box.querySelector("[data-progress-text]");
      function poll() {
        fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
          .then(function (r) { return r.json(); })
          .then(function (state) {
            bar.value = state.percent;
            bar.textContent = state.percent + "%";
            if (text) text.textContent = state.status_label + " · " + state.percent + "%";
            if (state.finished) { window.location.reload(); } else { setTimeout(poll, 1000); }
          })
          .catch(function () { setTimeout(poll, 3000); });
      }
      setTimeout(poll, 500);
    });
  }

  // --- A first look at a CSV before it is uploaded --------------------------------------------------
  function csvRows(text, limit) {
    var rows = [], row = [], cell = "", quoted = false;
    for (var i = 0; i < text.length && rows.length < limit; i++) {
      var c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
        else if (c === '"') { quoted = false; }
        else { cell += c; }
      } else if (c === '"') { quoted = true; }
      else if (c === ",") { row.push(cell); cell = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(cell); rows.push(row); row = []; cell = "";
      } else { cell += c; }
    }
    if ((cell || row.length) && rows.length < limit) { row.push(cell); rows.push(row); }
    return rows;
  }
  function setupCsvPreview() {
    var input = document.querySelector("[data-csv-preview]");
    if (!input) return;
    var target = document.getElementById(input.getAttribute("data-csv-preview"));
    input.addEventListener("change", function () {
      target.innerHTML = "";
      var file = input.files && input.files[0];
      if (!file || !/\.csv$/i.test(file.name)) return;
      file.slice(0, 65536).text().then(function (text) {
        var rows = csvRows(text.replace(/^\ufeff/, ""), 6);
        if (!rows.length) return;
        var caption = document.createElement("caption");
        caption.textContent = target.getAttribute("data-caption");
        var table = document.createElement("table");
        table.appendChild(caption);
        rows.forEach(function (cells, index) {
          var tr = document.createElement("tr");
          cells.forEach(function (value) {
            var cell = document.createElement(index === 0 ? "th" : "td");
            if (index === 0) cell.scope = "col";
            cell.textContent = value;
            tr.appendChild(cell);
          });
          table.appendChild(tr);
        });
        target.appendChild(table);
      });
    });
  }

  // --- Refusal form: show the fields of the chosen scope and start -------------------------------------
  function setupToggles() {
    document.querySelectorAll("[data-show-when]").forEach(function (block) {
      var rule = block.getAttribute("data-show-when").split("=");
      var radios = document.querySelectorAll("input[name='" + rule[0] + "']");
      function update() {
        var checked = document.querySelector("input[name='" + rule[0] + "']:checked");
        block.hidden = !(checked && rule[1].split("|").indexOf(checked.value) >= 0);
      }
      radios.forEach(function (r) { r.addEventListener("change", update); });
      update();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupIdentifiers();
    setupFingerprint();
    setupProgress();
    setupCsvPreview();
    setupToggles();
  });
})();
