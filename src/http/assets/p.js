/*! pixelpipe tracker: page views and events, no cookies, no dependencies */
(function (w, d) {
  var s = d.currentScript, l = w.location, n = w.navigator, h = w.history, last;
  if (!s) return;
  var site = s.getAttribute("data-site") || "",
    origin = new URL(s.src).origin;

  function off() {
    try {
      if (w.localStorage.pixelpipe_ignore === "true") return 1;
    } catch (e) {}
    return !s.hasAttribute("data-allow-local") &&
      (/^(localhost|127\.|\[::1\]$)/.test(l.hostname) || l.protocol === "file:");
  }

  // One event: a beacon (text/plain JSON: no CORS preflight), or the GIF where
  // sendBeacon is missing or refuses. Both become the same query string on the server.
  function send(name, props) {
    if (off()) return;
    var e = { event: name, site: site, url: l.href.split("#")[0] }, k, v, p;
    for (k in props) if (Object.prototype.hasOwnProperty.call(props, k)) e[k] = props[k];
    e.title = d.title;
    e.sw = w.screen.width;
    e.lang = n.language;
    e.ts = Date.now();
    if (n.sendBeacon && n.sendBeacon(origin + "__BEACON__", JSON.stringify(e))) return;
    p = new URLSearchParams();
    for (k in e) {
      v = e[k];
      p.append(k, v == null ? "" : typeof v == "object" ? JSON.stringify(v) : v);
    }
    new Image().src = origin + "__PIXEL__?" + p;
  }

  function view() {
    var u = l.href.split("#")[0];
    if (u === last) return;
    send("pageview", { ref: last || d.referrer });
    last = u;
  }

  var queued = (w.pixelpipe && w.pixelpipe.q) || [], i;
  w.pixelpipe = function (kind, name, props) {
    if (kind === "event") send(name, props);
  };
  if (h.pushState) {
    var push = h.pushState;
    h.pushState = function () {
      var r = push.apply(this, arguments);
      view();
      return r;
    };
    w.addEventListener("popstate", view);
  }
  view();
  for (i = 0; i < queued.length; i++) w.pixelpipe.apply(w, queued[i]);
})(window, document);
