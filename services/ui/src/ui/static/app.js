/* Gridpilot pages: live log panels (de-duplicated, follow, level filter), stream cursor
   for reconnects, ticking heartbeat ages, dismissable pop-ups. No framework beyond htmx. */
(function () {
  "use strict";
  var MAX_LINES = 5000;
  var cursor = null;          // newest log cursor received on this page
  var dismissed = {};         // pop-up keys the reader closed
  try { dismissed = JSON.parse(sessionStorage.getItem("gp-dismissed") || "{}"); } catch (e) { dismissed = {}; }

  // Every htmx request carries the CSRF token of this login (ui.csrf): a page of another
  // origin cannot read it, so it cannot send it.
  document.addEventListener("htmx:configRequest", function (evt) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) { evt.detail.headers["X-CSRF-Token"] = meta.content; }
  });

  var sources = [];           // this page's EventSources (reconnects make new ones)
  // Reconnects made by htmx (after the browser gave up) carry the cursor as a query
  // parameter; the browser's own reconnects send it as Last-Event-ID.
  htmx.createEventSource = function (url) {
    var u = new URL(url, window.location.href);
    if (cursor) { u.searchParams.set("cursor", cursor); }
    var src = new EventSource(u.toString(), { withCredentials: true });
    sources = sources.filter(function (s) { return s.readyState !== EventSource.CLOSED; });
    sources.push(src);
    return src;
  };
  // Leaving the page closes its streams: cut by the browser instead, each would be reported
  // by the sse extension as an error ("[object Event]" in the console). A page brought back
  // from the back-forward cache has no stream then, and what it shows is old: load it again.
  window.addEventListener("pagehide", function () {
    sources.forEach(function (s) { s.close(); });
  });
  window.addEventListener("pageshow", function (evt) {
    if (evt.persisted && sources.length) { window.location.reload(); }
  });

  // A page hidden for PARK_MS gives its stream back, and takes it again when it is shown: the
  // browser allows 6 connections per server, and each open stream holds one, so with six
  // Gridpilot tabs open (session pages, the dashboard) a seventh never loaded. Shown again,
  // the page reconnects with its cursor: the log lines it missed are replayed and every part
  // is sent afresh, so nothing is lost while it was parked.
  var PARK_MS = 5000;
  var parkTimer = null;
  var parked = [];            // the streams this page closed while hidden
  function setStream(state) {
    document.documentElement.dataset.stream = state;
    var live = document.getElementById("live");
    if (!live) { return; }
    live.hidden = false;
    live.dataset.state = state;
    live.textContent = { open: "Live", down: "Reconnecting…", parked: "Paused while hidden" }[state];
  }
  function park() {
    if (browserAlertsOn()) { return; }   // a page that alerts keeps listening while hidden
    parked = sources.filter(function (s) { return s.readyState !== EventSource.CLOSED; });
    parked.forEach(function (s) { s.close(); });
    if (parked.length) { setStream("parked"); }
  }
  function unpark() {
    var was = parked;
    parked = [];
    // the sse extension reconnects a stream that failed: a new EventSource with the cursor
    was.forEach(function (s) { if (s.onerror) { s.onerror(new Event("error")); } });
  }
  document.addEventListener("visibilitychange", function () {
    clearTimeout(parkTimer);
    if (document.visibilityState === "hidden") {
      parkTimer = setTimeout(park, PARK_MS);
    } else {
      unpark();
    }
  });

  function atBottom(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 24; }

  // The page's own scrolling: to the newest line. Its scroll event comes a frame later; the
  // position set here is what that event is compared with (see "scroll" below).
  var lastTop = new WeakMap();  // log box → scrollTop the page set or the last scroll event saw
  function toBottom(box) {
    box.scrollTop = box.scrollHeight;
    lastTop.set(box, box.scrollTop);
  }

  function panelOf(el) { return el.closest(".logpanel"); }

  function setFollow(panel, on) {
    panel.dataset.follow = on ? "1" : "0";
    var b = panel.querySelector(".follow");
    if (b) { b.setAttribute("aria-pressed", on ? "true" : "false"); b.textContent = on ? "Following" : "Follow"; }
    if (on) { toBottom(panel.querySelector(".log-scroll")); }
  }

  function trim(list, max) {
    while (list.children.length > max) { list.removeChild(list.firstElementChild); }
  }

  function appendLines(list, html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var added = 0;
    Array.prototype.slice.call(tpl.content.children).forEach(function (li) {
      if (li.id && document.getElementById(li.id)) { return; }   // replayed twice: keep one
      list.appendChild(li); added++;
    });
    trim(list, 2 * MAX_LINES);   // a hidden tab runs no frames: bound it here too
    if (added) { settle(list); }
    return added;
  }

  // Following (scroll to the newest line) and trimming wait for the next frame: reading
  // scrollHeight after every line forced a layout per line (with many pages open, most of a
  // line's cost); a frame lays out once however many lines came. Nothing moves the scroll
  // position before then: lines are only appended below what is shown.
  var unsettled = [];
  function settle(list) {
    if (unsettled.indexOf(list) >= 0) { return; }
    if (!unsettled.length) { requestAnimationFrame(settleAll); }
    unsettled.push(list);
  }
  function settleAll() {
    var lists = unsettled;
    unsettled = [];
    lists.forEach(function (list) {
      var panel = panelOf(list);
      if (panel && panel.dataset.follow !== "0") {
        // trimmed only while following: a reader scrolled up keeps their place (to 2 × MAX)
        trim(list, MAX_LINES);
        toBottom(panel.querySelector(".log-scroll"));
      }
      list.dataset.count = String(list.children.length);
    });
  }

  // The stream is the only writer of a page's live parts (a control's answer goes to the
  // message area): each part is swapped in as it comes, in the order the server read them.
  document.addEventListener("htmx:sseBeforeMessage", function (evt) {
    var d = evt.detail;
    if (d && d.lastEventId) { cursor = d.lastEventId; }
    var el = evt.target;
    if (el.classList && el.classList.contains("log")) {
      evt.preventDefault();
      appendLines(el, d.data);
    }
  });

  document.addEventListener("htmx:sseOpen", function (evt) {
    var src = evt.detail.source;
    setStream("open");
    src.addEventListener("gp-login", function (e) { window.location.assign(e.data); });
  });
  document.addEventListener("htmx:sseError", function () {
    setStream("down");
  });

  // Only the reader leaves follow: a wheel turned up or an up key on the box, or a drag
  // (scrollbar, finger) that moves it up. The page's own scrolling never does: its scroll
  // event fires a frame later, by when more lines may have come and the box is no longer at
  // the bottom (a busy or backgrounded page); a layout change may move the box too.
  var UP_KEYS = { ArrowUp: 1, PageUp: 1, Home: 1 };
  var held = null;  // the log box a pointer or finger is down on
  function logBox(el) { return el && el.closest ? el.closest(".log-scroll") : null; }
  function leaveFollow(box) {
    var panel = panelOf(box);
    if (panel.dataset.follow !== "0") { setFollow(panel, false); }
  }
  document.addEventListener("wheel", function (evt) {
    var box = logBox(evt.target);
    if (box && evt.deltaY < 0 && box.scrollTop > 0) { leaveFollow(box); }
  }, { capture: true, passive: true });
  document.addEventListener("keydown", function (evt) {
    var box = logBox(evt.target);
    if (box && UP_KEYS[evt.key] && box.scrollTop > 0) { leaveFollow(box); }
  }, true);
  function hold(evt) { held = logBox(evt.target); }
  function release() { held = null; }
  document.addEventListener("pointerdown", hold, true);
  document.addEventListener("touchstart", hold, { capture: true, passive: true });
  document.addEventListener("pointerup", release, true);
  document.addEventListener("touchend", release, true);
  document.addEventListener("touchcancel", release, true);

  document.addEventListener("scroll", function (evt) {
    var box = evt.target;
    if (!box.classList || !box.classList.contains("log-scroll")) { return; }
    var panel = panelOf(box);
    var top = box.scrollTop, before = lastTop.get(box);
    lastTop.set(box, top);
    if (before === undefined) { return; }
    if (panel.dataset.follow === "0") {
      // the reader came back down (a page not following never scrolls; a smooth scroll up
      // that has only just begun is still at the bottom, and moving up)
      if (top > before && atBottom(box)) { setFollow(panel, true); }
    } else if (held === box && top < before && !atBottom(box)) {
      leaveFollow(box);
    }
  }, true);

  document.addEventListener("click", function (evt) {
    var t = evt.target;
    if (t.closest && t.closest(".follow")) { setFollow(panelOf(t), true); return; }
    var dismiss = t.closest && t.closest(".dismiss");
    if (dismiss) {
      var box = dismiss.closest("[data-key]") || dismiss.closest(".message");
      if (box && box.dataset.key) {
        dismissed[box.dataset.key] = 1;
        try { sessionStorage.setItem("gp-dismissed", JSON.stringify(dismissed)); } catch (e) { /* private mode */ }
      }
      if (box) { box.remove(); }
    }
  });

  document.addEventListener("change", function (evt) {
    var sel = evt.target;
    if (!sel.classList || !sel.classList.contains("level-filter")) { return; }
    var list = panelOf(sel).querySelector("ol.log");
    list.className = list.className.replace(/\bmin-\w+/g, "").trim() + " min-" + sel.value;
  });

  function hideDismissed(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("[data-key]").forEach(function (p) {
      if (dismissed[p.dataset.key]) { p.remove(); }
    });
  }
  document.addEventListener("htmx:afterSettle", function (evt) { hideDismissed(evt.target); });
  document.addEventListener("DOMContentLoaded", function () { hideDismissed(document); });

  // Ages ("3 s ago") tick between heartbeats without asking the server.
  var born = new WeakMap();
  function word(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) { return s + " s"; }
    if (s < 3600) { return Math.floor(s / 60) + " min " + (s % 60) + " s"; }
    return Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min";
  }
  setInterval(function () {
    var now = performance.now();
    document.querySelectorAll("[data-age]").forEach(function (el) {
      if (!born.has(el)) { born.set(el, now); }
      var age = parseFloat(el.dataset.age) + (now - born.get(el)) / 1000;
      el.textContent = word(age);
      el.classList.toggle("stale", age > 10);
    });
  }, 1000);
  // Browser alerts (opt-in, per browser; the Notification API): a desktop notification when
  // a pause prompt or a scope lock appears on this page while it is hidden. What calls for
  // one carries data-alert (a key: the same prompt or lock alerts once per page),
  // data-alert-title and data-alert-body. A page with alerts on keeps its stream while
  // hidden (see park): a parked page would hear nothing.
  var ALERTS_KEY = "gp-browser-alerts";
  var alerted = {};
  function hasNotifications() { return typeof window.Notification === "function"; }
  function alertsWanted() {
    try { return localStorage.getItem(ALERTS_KEY) === "1"; } catch (e) { return false; }
  }
  function browserAlertsOn() {
    return hasNotifications() && Notification.permission === "granted" && alertsWanted();
  }
  function showAlertSwitches() {
    document.querySelectorAll("[data-browser-alerts]").forEach(function (b) {
      var box = b.closest(".browser-alerts");
      var on = browserAlertsOn();
      if (box) { box.hidden = !hasNotifications(); }
      b.setAttribute("aria-checked", on ? "true" : "false");
      b.classList.toggle("on", on);
      var word = b.querySelector("b");
      if (word) { word.textContent = on ? "on" : "off"; }
      var note = box && box.querySelector("[data-browser-alerts-note]");
      if (note) {
        note.textContent = hasNotifications() && Notification.permission === "denied"
          ? "Blocked: allow notifications for this site in the browser's settings." : "";
      }
    });
  }
  function setAlerts(on) {
    try {
      if (on) { localStorage.setItem(ALERTS_KEY, "1"); } else { localStorage.removeItem(ALERTS_KEY); }
    } catch (e) { /* private mode: nothing kept */ }
    showAlertSwitches();
  }
  document.addEventListener("click", function (evt) {
    var b = evt.target.closest && evt.target.closest("[data-browser-alerts]");
    if (!b || !hasNotifications()) { return; }
    if (browserAlertsOn()) { setAlerts(false); return; }
    if (Notification.permission === "granted") { setAlerts(true); return; }
    Notification.requestPermission().then(function (answer) { setAlerts(answer === "granted"); });
  });
  function alertFor(el) {
    var key = el.getAttribute("data-alert");
    if (!key || alerted[key]) { return; }
    alerted[key] = 1;   // seen: shown while visible, or alerted once while hidden
    if (document.visibilityState !== "hidden" || !browserAlertsOn()) { return; }
    var note = new Notification(el.getAttribute("data-alert-title") || "Gridpilot", {
      body: el.getAttribute("data-alert-body") || "", tag: key
    });
    note.onclick = function () { window.focus(); note.close(); };
  }
  function scanAlerts(node) {
    if (node.nodeType !== 1) { return; }
    if (node.hasAttribute("data-alert")) { alertFor(node); }
    node.querySelectorAll("[data-alert]").forEach(alertFor);
  }
  new MutationObserver(function (records) {
    records.forEach(function (r) { r.addedNodes.forEach(scanAlerts); });
  }).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", function () {
    scanAlerts(document.body);
    showAlertSwitches();
  });
  document.addEventListener("htmx:afterSettle", showAlertSwitches);
})();
