// Live updates: a page whose <body> has data-refresh-ms fetches itself again after
// that long and swaps in its <main>, until a fresh copy comes without the attribute
// (a finished checkout). A page being typed into is left alone until the next round.
(function () {
  "use strict";
  var every = Number(document.body.dataset.refreshMs || 0);
  if (!every) return;
  function busy() {
    var active = document.activeElement;
    return active && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(active.tagName);
  }
  function refresh() {
    if (busy()) return setTimeout(refresh, every);
    fetch(location.href, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok && response.status !== 404) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html");
        var main = fresh.querySelector("main");
        if (main) document.querySelector("main").replaceWith(document.adoptNode(main));
        document.body.dataset.updated = new Date().toISOString();
        if (fresh.body.dataset.refreshMs) {
          setTimeout(refresh, every);
        } else {
          delete document.body.dataset.refreshMs;
          var live = document.querySelector(".live");
          if (live) live.remove();
        }
      })
      .catch(function () {
        // The console itself did not answer: try again.
        setTimeout(refresh, every);
      });
  }
  setTimeout(refresh, every);
})();
