// Time spent on a lesson counts activity, not an open tab: while the learner reads, scrolls, types or listens,
// the page tells the portal once a minute; a page left alone tells it nothing.
(function () {
  "use strict";
  var lesson = document.querySelector("[data-activity]");
  var form = document.querySelector("form input[name=csrf_token]");
  if (!lesson || !form) { return; }
  var url = lesson.getAttribute("data-activity");
  var token = form.value;
  var active = false;
  function seen() { active = true; }
  ["scroll", "keydown", "pointerdown", "pointermove", "touchstart", "wheel"].forEach(function (name) {
    window.addEventListener(name, seen, { passive: true });
  });
  document.querySelectorAll("audio, video").forEach(function (player) {
    player.addEventListener("timeupdate", seen);
  });
  function report() {
    if (!active || document.visibilityState !== "visible") { return; }
    active = false;
    var body = new FormData();
    body.append("csrf_token", token);
    fetch(url, { method: "POST", body: body, credentials: "same-origin" }).catch(function () {});
  }
  window.setInterval(report, 60000);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden" && active) {
      active = false;
      var body = new FormData();
      body.append("csrf_token", token);
      navigator.sendBeacon(url, body);
    }
  });
}());
