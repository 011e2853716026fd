/* Present mode for a class: one button (or the "p" key) hides the prose and the sidebars and
 * enlarges the figures, so a projector shows the code and what it drew; press it again to read.
 * The choice is remembered (localStorage), so the next chapter opens the same way.
 * Works from a copied folder or python -m http.server: nothing is fetched. */
(function () {
  "use strict";
  var KEY = "cc-present";
  var CLASS = "cc-present";

  function remembered() {
    try { return window.localStorage.getItem(KEY) === "on"; } catch (e) { return false; }
  }
  function remember(on) {
    try { window.localStorage.setItem(KEY, on ? "on" : "off"); } catch (e) { /* private mode */ }
  }
  function apply(on, button) {
    document.documentElement.classList.toggle(CLASS, on);
    if (button) {
      button.setAttribute("aria-pressed", on ? "true" : "false");
      button.textContent = on ? "Read" : "Present";
      button.title = on ? "Show the prose again (p)" : "Hide the prose, enlarge the figures (p)";
    }
  }
  function toggle(button) {
    var on = !document.documentElement.classList.contains(CLASS);
    remember(on);
    apply(on, button);
  }

  // Before the first paint where possible, so a page opened in present mode does not flash.
  apply(remembered(), null);

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "cc-present-toggle btn btn-sm";
    button.addEventListener("click", function () { toggle(button); });
    document.body.appendChild(button);
    apply(remembered(), button);
    document.addEventListener("keydown", function (event) {
      var target = event.target;
      var typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
      if (event.key === "p" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
        toggle(button);
      }
    });
  });
})();
