// An emailed link carries its token after "#", which a browser never sends to a server: the token stays out of
// every access log (OTP-09). Every page at /activate/ moves such a token into a POST (a link opened where an
// earlier one was left open included), takes it out of the address bar and history, and the server answers with
// the clean password page (ACT-02).
(function () {
  "use strict";
  var form = document.getElementById("activation-link-form");
  if (!form) {
    return;
  }
  var noScript = document.getElementById("activation-link-no-script");
  if (noScript) {
    noScript.hidden = true;
  }

  function postToken() {
    var token = window.location.hash.slice(1);
    if (token) {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    if (/^[A-Za-z0-9_-]{16,128}$/.test(token)) {
      form.elements.token.value = token;
      form.submit();
      return;
    }
    var incomplete = document.getElementById("activation-link-incomplete");
    if (incomplete) {
      incomplete.hidden = false;
    }
  }

  postToken();
  // A link opened in the tab already showing /activate/ changes only the part after "#": no new page loads.
  window.addEventListener("hashchange", postToken);
})();
