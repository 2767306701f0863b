// An emailed link carries its token after "#", which a browser never sends to a server: the token stays out of
// every access log (OTP-09). This page moves it into a POST, takes it out of the address bar and history, and
// the server answers with the clean password page (ACT-02).
(function () {
  "use strict";
  var form = document.getElementById("activation-link-form");
  if (!form) {
    return;
  }
  document.getElementById("activation-link-no-script").hidden = true;
  var token = window.location.hash.slice(1);
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  if (!/^[A-Za-z0-9_-]{16,128}$/.test(token)) {
    document.getElementById("activation-link-incomplete").hidden = false;
    return;
  }
  form.elements.token.value = token;
  form.submit();
})();
