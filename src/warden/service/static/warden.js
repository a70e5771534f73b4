// Warden reviewer UI: keyboard shortcuts and click-to-reveal images. Vanilla JS, no build step.
// Nothing here reads content into code: values come from data- attributes and form fields.
(function () {
  "use strict";

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && !/^(checkbox|radio|button|submit)$/.test(el.type));
  }

  // Wellness: every image starts blurred; a click (or Enter/Space on its button) toggles it.
  function setupMedia() {
    document.querySelectorAll(".media button.reveal").forEach(function (btn) {
      btn.addEventListener("click", function (ev) {
        ev.preventDefault();
        var img = btn.querySelector("img");
        if (!img) return;
        var blurred = img.classList.toggle("blur");
        btn.setAttribute("aria-pressed", blurred ? "false" : "true");
      });
    });
  }

  function setupDecisionForm() {
    var form = document.getElementById("decision-form");
    if (!form) return null;
    var rows = Array.prototype.slice.call(form.querySelectorAll(".category-row"));
    var focus = rows.length ? 0 : -1;

    function showFocus() {
      rows.forEach(function (r, i) { r.classList.toggle("focused", i === focus); });
    }
    function toggle(row) {
      var box = row && row.querySelector("input[type=checkbox]");
      if (box) box.checked = !box.checked;
    }
    function setAction(value) {
      var radio = form.querySelector("input[name=action][value='" + value + "']");
      if (radio) radio.checked = true;
    }
    showFocus();
    return function (ev) {
      var k = ev.key;
      if (/^[1-9]$/.test(k)) {
        var row = form.querySelector(".category-row[data-key='" + k + "']");
        if (row) { toggle(row); focus = rows.indexOf(row); showFocus(); return true; }
        return false;
      }
      if (k === "j" && rows.length) { focus = Math.min(rows.length - 1, focus + 1); showFocus(); return true; }
      if (k === "k" && rows.length) { focus = Math.max(0, focus - 1); showFocus(); return true; }
      if ((k === "x" || k === " ") && focus >= 0) { toggle(rows[focus]); return true; }
      var actionKey = form.querySelector("input[name=action][data-key='" + k + "']");
      if (actionKey) { actionKey.checked = true; return true; }
      if (k === "Enter") { form.requestSubmit(); return true; }
      return false;
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupMedia();
    var decisionKeys = setupDecisionForm();
    var help = document.getElementById("shortcut-help");
    var note = document.getElementById("note");
    if (note) {
      note.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); note.form.requestSubmit(); }
      });
    }
    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
      if (ev.key === "Enter" && ev.target && (ev.target.tagName === "BUTTON" || ev.target.tagName === "A")) return;
      if (decisionKeys && decisionKeys(ev)) { ev.preventDefault(); return; }
      if (ev.key === "n") {
        var next = document.querySelector("form.next-item");
        if (next) { ev.preventDefault(); next.requestSubmit(); }
      } else if (ev.key === "?" && help) {
        help.hidden = !help.hidden;
      }
    });
  });
})();
