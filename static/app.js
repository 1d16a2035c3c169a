// Progressive enhancement only: every page works without this file.
// Copy-to-clipboard and print buttons, and the recovery-code hint switch.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".js-only").forEach(function (el) { el.hidden = false; });

  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var target = document.getElementById(button.getAttribute("data-copy-target"));
      if (!target || !navigator.clipboard) { return; }
      var items = target.querySelectorAll("li");
      var text = items.length
        ? Array.prototype.map.call(items, function (li) { return li.textContent.trim(); }).join("\n")
        : target.textContent.trim();
      navigator.clipboard.writeText(text).then(function () {
        var label = button.textContent;
        button.textContent = "Copied to clipboard";
        setTimeout(function () { button.textContent = label; }, 2000);
      });
    });
  });

  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  var toggle = document.getElementById("use-recovery-code");
  var field = document.getElementById("code");
  var hint = document.getElementById("code-hint");
  if (toggle && field && hint) {
    toggle.addEventListener("toggle", function () {
      field.setAttribute("inputmode", toggle.open ? "text" : "numeric");
      hint.textContent = hint.getAttribute(toggle.open ? "data-recovery-hint" : "data-totp-hint");
      field.focus();
    });
  }
});
