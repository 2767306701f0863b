/*
 * Security keys (WebAuthn) in the browser. A static file because the Content-Security-Policy allows no inline script.
 *
 * A form marked data-webauthn="register" or data-webauthn="authenticate" fetches its options (a POST with the
 * form's fields to data-options-url, answered with JSON), asks the browser for the key
 * (navigator.credentials.create or .get), puts the key's answer, as JSON, into the hidden "credential" field
 * and submits the form as usual. The server checks everything; nothing here is trusted.
 *
 * data-webauthn="passwordless" (the sign-in page) asks for any passkey of this site, with no ID typed. Where the
 * browser supports it (conditional mediation), the passkeys are also offered in the ID field's autofill
 * (autocomplete="username webauthn"); the button works everywhere else. Forms with data-device="passkey" talk
 * about unlocking a passkey rather than touching a key, as do forms whose checked "form" choice is "passkey"; their
 * submit button, given data-words-<choice> attributes, names the choice too.
 */
(function () {
  "use strict";

  var MESSAGES = {
    unsupported:
      "This browser cannot use security keys. Use a current Chrome, Edge, Firefox or Safari, or another device.",
    touch: "Touch your security key now (or hold it to your phone).",
    checking: "Checking the key…",
    NotAllowedError:
      "The security key did not answer in time, or the request was cancelled. Press the button to try again.",
    InvalidStateError:
      "This security key is already registered. Use another key, or remove the old one in My devices first.",
    AbortError: "The request was cancelled. Press the button to try again.",
    SecurityError: "This site's address does not match its security key settings. Please tell the help desk.",
    NotSupportedError: "This security key cannot be used here. Try another key.",
    generic: "Something went wrong talking to the security key. Press the button to try again."
  };

  // The same moments, for a passkey on this phone or computer.
  var PASSKEY_MESSAGES = {
    unsupported:
      "This browser cannot use passkeys. Use a current Chrome, Edge, Firefox or Safari, or sign in with your ID and password.",
    touch: "Unlock with your face, fingerprint or screen lock when your browser asks.",
    checking: "Checking the passkey…",
    NotAllowedError:
      "The passkey did not answer in time, or the request was cancelled. Press the button to try again.",
    InvalidStateError:
      "A passkey for your account is already on this device. Use it to sign in, or remove the old one in My devices first.",
    AbortError: "The request was cancelled. Press the button to try again.",
    SecurityError: "This site's address does not match its passkey settings. Please tell the help desk.",
    NotSupportedError:
      "This device cannot make a passkey that checks it is you (face, fingerprint or screen lock). Choose another kind of device.",
    generic: "Something went wrong talking to the passkey. Press the button to try again."
  };

  function toBuffer(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) {
      base64 += "=";
    }
    var binary = window.atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return window.btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (credential) {
      credential.id = toBuffer(credential.id);
      return credential;
    });
  }

  function creationOptions(options) {
    options.challenge = toBuffer(options.challenge);
    options.user.id = toBuffer(options.user.id);
    options.excludeCredentials = descriptors(options.excludeCredentials);
    return options;
  }

  function requestOptions(options) {
    options.challenge = toBuffer(options.challenge);
    options.allowCredentials = descriptors(options.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: { clientDataJSON: toBase64url(response.clientDataJSON) },
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      authenticatorAttachment: credential.authenticatorAttachment || null
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    }
    if (response.authenticatorData) {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      json.response.userHandle = response.userHandle ? toBase64url(response.userHandle) : null;
    }
    return json;
  }

  function Refusal(message) {
    this.name = "Refusal";
    this.message = message;
  }

  function fetchOptions(form) {
    return window
      .fetch(form.getAttribute("data-options-url"), {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json" }
      })
      .then(function (response) {
        return response
          .json()
          .catch(function () {
            return {};
          })
          .then(function (body) {
            if (!response.ok) {
              throw new Refusal(body.error || MESSAGES.generic);
            }
            if (!body.challenge) {
              // Not options: most likely the sign-in expired and we were sent to a page instead.
              throw new Refusal(MESSAGES.generic);
            }
            return body;
          });
      });
  }

  function setStatus(form, text, isError) {
    var status = form.querySelector("[data-webauthn-status]");
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function submitCredential(form, words, credential) {
    form.querySelector("input[name=credential]").value = JSON.stringify(credentialJSON(credential));
    setStatus(form, words.checking, false);
    form.submit();
  }

  // The passkeys in the ID field's autofill: a quiet request that waits for the person to pick one there.
  // Any failure is silent (the button still works); pressing the button cancels it first.
  function offerInAutofill(form) {
    if (!window.AbortController || !PublicKeyCredential.isConditionalMediationAvailable) {
      return null;
    }
    var controller = new AbortController();
    PublicKeyCredential.isConditionalMediationAvailable()
      .then(function (available) {
        if (!available || controller.signal.aborted) {
          return null;
        }
        return fetchOptions(form).then(function (options) {
          if (controller.signal.aborted) {
            return null;
          }
          return navigator.credentials.get({
            mediation: "conditional",
            publicKey: requestOptions(options),
            signal: controller.signal
          });
        });
      })
      .then(function (credential) {
        if (credential && !controller.signal.aborted) {
          submitCredential(form, PASSKEY_MESSAGES, credential);
        }
      })
      .catch(function () {});
    return controller;
  }

  // Whether the form is about a passkey. A form that offers both (the help desk's "What does the person
  // register?") is about what is chosen when the button is pressed.
  function aboutPasskey(form, ceremony) {
    if (ceremony === "passwordless" || form.getAttribute("data-device") === "passkey") {
      return true;
    }
    var chosen = form.querySelector("input[name=form]:checked");
    return Boolean(chosen && chosen.value === "passkey");
  }

  // A button that names each choice (data-words-security_key, data-words-passkey) says what is chosen now.
  function nameButton(form, button) {
    var chosen = form.querySelector("input[name=form]:checked");
    var words = chosen && button.getAttribute("data-words-" + chosen.value);
    if (words) {
      button.textContent = words;
    }
  }

  function start(form) {
    var ceremony = form.getAttribute("data-webauthn");
    var words = aboutPasskey(form, ceremony) ? PASSKEY_MESSAGES : MESSAGES;
    var button = form.querySelector("button[type=submit]");
    nameButton(form, button);
    form.addEventListener("change", function () {
      nameButton(form, button);
    });
    if (!window.PublicKeyCredential || !navigator.credentials || !window.fetch) {
      setStatus(form, words.unsupported, true);
      button.disabled = true;
      return;
    }
    var autofill = ceremony === "passwordless" ? offerInAutofill(form) : null;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      words = aboutPasskey(form, ceremony) ? PASSKEY_MESSAGES : MESSAGES;
      if (autofill) {
        autofill.abort();
        autofill = null;
      }
      setStatus(form, words.touch, false);
      fetchOptions(form)
        .then(function (options) {
          if (ceremony === "register") {
            return navigator.credentials.create({ publicKey: creationOptions(options) });
          }
          return navigator.credentials.get({ publicKey: requestOptions(options) });
        })
        .then(function (credential) {
          submitCredential(form, words, credential);
        })
        .catch(function (error) {
          button.disabled = false;
          var text = error instanceof Refusal ? error.message : words[error && error.name] || words.generic;
          setStatus(form, text, true);
        });
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("form[data-webauthn]"), start);
})();
