// voc labeling page: keyboard-first. Digits choose a label (several digits typed quickly
// name labels past 9), Enter submits it, S skips, U undoes the last decision. Without this
// script every control is a plain form that works by mouse, Tab and Space.
(function () {
  "use strict";
  var typed = "";
  var typedAt = 0;

  function form(id) {
    return document.getElementById(id);
  }

  function choose(n) {
    var input = document.querySelector('#label-form input[name="label"][data-key="' + n + '"]');
    if (!input) {
      return false;
    }
    input.checked = true;
    input.focus();
    var status = document.getElementById("status");
    if (status) {
      status.textContent = "Chosen: " + input.value + ". Press Enter to submit.";
    }
    return true;
  }

  function submit(id) {
    var f = form(id);
    var button = f && f.querySelector('button[type="submit"]');
    if (f && !(button && button.disabled)) {
      send(f);
    }
  }

  // Submits as the form's own button would (requestSubmit runs the form's checks).
  function send(f) {
    if (typeof f.requestSubmit === "function") {
      f.requestSubmit();
    } else {
      HTMLFormElement.prototype.submit.call(f);
    }
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) {
      return;
    }
    var target = e.target;
    if (target && (target.tagName === "SELECT" || target.tagName === "TEXTAREA" ||
        (target.tagName === "INPUT" && target.type !== "radio"))) {
      return;
    }
    var labelForm = form("label-form");
    if (/^[0-9]$/.test(e.key) && labelForm) {
      var now = Date.now();
      typed = now - typedAt < 800 ? typed + e.key : e.key;
      typedAt = now;
      if (!choose(typed)) {
        typed = e.key;
        choose(typed);
      }
      e.preventDefault();
    } else if (e.key === "Enter" && labelForm) {
      if (labelForm.querySelector('input[name="label"]:checked')) {
        e.preventDefault();
        send(labelForm);
      }
    } else if ((e.key === "s" || e.key === "S") && form("skip-form")) {
      e.preventDefault();
      submit("skip-form");
    } else if ((e.key === "u" || e.key === "U") && form("undo-form")) {
      e.preventDefault();
      submit("undo-form");
    }
  });
})();
