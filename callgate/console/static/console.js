/* The decision list's live follow, as `callgate log --follow` does: every 2 s, the
   decisions newer than the last one seen, with the page's filters, added at the top.
   Rows are built with DOM calls and textContent only: nothing from the log becomes markup.
   Without this script the list is a plain page; with it, the #live button appears. */
(function () {
  "use strict";

  var PERIOD = 2000;      // ms between two polls
  var MAX_FAILURES = 3;   // consecutive failures before following stops
  var MAX_ROWS = 500;     // rows kept on the page while following

  var button = document.getElementById("live");
  var status = document.getElementById("live-status");
  var table = document.getElementById("decisions");
  if (!button || !status || !table || !table.tBodies.length || !window.fetch) {
    return;
  }
  var body = table.tBodies[0];
  var feed = button.getAttribute("data-feed");
  var after = Number(button.getAttribute("data-after-seq")) || 0;
  var following = false;
  var timer = null;
  var failures = 0;
  var busy = false;

  function say(key, extra) {
    status.textContent = (status.getAttribute("data-" + key) || "") + (extra || "");
  }

  function cell(name, child) {
    var td = document.createElement("td");
    td.className = name;
    if (typeof child === "string") {
      td.textContent = child;
    } else {
      td.appendChild(child);
    }
    return td;
  }

  function row(entry) {
    var tr = document.createElement("tr");
    tr.className = "decision fresh";
    tr.setAttribute("data-id", entry.id);
    tr.setAttribute("data-seq", String(entry.seq));

    var link = document.createElement("a");
    link.href = entry.url;
    link.textContent = entry.at;
    tr.appendChild(cell("at", link));

    var verdict = document.createElement("span");
    verdict.className = entry.verdict === "allow" ? "verdict-allowed" : "verdict-rejected";
    verdict.textContent = entry.verdict_text;
    var verdictCell = cell("verdict", verdict);
    if (entry.dry_run) {
      var tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = entry.dry_run_text;
      verdictCell.appendChild(document.createTextNode(" "));
      verdictCell.appendChild(tag);
    }
    tr.appendChild(verdictCell);

    var reasons = cell("reasons", "");
    entry.reasons.forEach(function (reason, index) {
      if (index > 0) {
        reasons.appendChild(document.createElement("br"));
      }
      var span = document.createElement("span");
      span.className = "reason";
      var code = document.createElement("code");
      code.textContent = reason.code;
      span.appendChild(code);
      span.appendChild(document.createTextNode(" " + reason.text));
      reasons.appendChild(span);
    });
    tr.appendChild(reasons);

    tr.appendChild(cell("callee", entry.callee));
    tr.appendChild(cell("company", entry.company));
    tr.appendChild(cell("campaign", entry.campaign));
    return tr;
  }

  function show(entries) {
    var empty = body.querySelector("tr.empty");
    if (entries.length && empty) {
      body.removeChild(empty);
    }
    // Oldest first from the feed: each goes on top, so the newest ends first.
    entries.forEach(function (entry) {
      body.insertBefore(row(entry), body.firstChild);
      after = Math.max(after, entry.seq);
    });
    while (body.rows.length > MAX_ROWS) {
      body.removeChild(body.lastChild);
    }
  }

  function url() {
    return feed + (feed.indexOf("?") < 0 ? "?" : "&") + "after_seq=" + encodeURIComponent(after);
  }

  function stop(key) {
    following = false;
    clearTimeout(timer);
    timer = null;
    button.setAttribute("aria-pressed", "false");
    button.textContent = button.getAttribute("data-start");
    say(key);
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = following && !document.hidden ? setTimeout(poll, delay) : null;
  }

  function poll() {
    if (!following || busy) {
      return;
    }
    busy = true;
    fetch(url(), {
      credentials: "same-origin",
      redirect: "manual",            // a lost session answers with the login page
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (response.type === "opaqueredirect" || response.status === 401 ||
          response.status === 403) {
        throw { expired: true };
      }
      if (!response.ok) {
        throw { expired: false };
      }
      return response.json();
    }).then(function (answer) {
      busy = false;
      failures = 0;
      show(answer.entries);
      if (answer.entries.length) {
        say("on", " (+" + answer.entries.length + " " + status.getAttribute("data-new") + ")");
      }
      schedule(answer.more ? 0 : PERIOD);
    }).catch(function (problem) {
      busy = false;
      if (problem && problem.expired) {
        stop("expired");
        return;
      }
      failures += 1;
      if (failures >= MAX_FAILURES) {
        stop("failed");
      } else {
        schedule(PERIOD);
      }
    });
  }

  function start() {
    following = true;
    failures = 0;
    button.setAttribute("aria-pressed", "true");
    button.textContent = button.getAttribute("data-stop");
    say(document.hidden ? "paused" : "on");
    schedule(0);
  }

  button.addEventListener("click", function () {
    if (following) {
      stop("off");
    } else {
      start();
    }
  });

  // A hidden tab asks nothing of the server; it catches up when shown again.
  document.addEventListener("visibilitychange", function () {
    if (!following) {
      return;
    }
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
      say("paused");
    } else {
      say("on");
      schedule(0);
    }
  });

  button.hidden = false;
}());
