// Progressive enhancement only: every page works without this file.
// Copy-to-clipboard and print buttons, and the recovery-code hint switch.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".js-only").forEach(function (el) { el.hidden = false; });

  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var target = document.getElementById(button.getAttribute("data-copy-target"));
      if (!target || !navigator.clipboard) { return; }
      var items = target.querySelectorAll("li");
      var text = items.length
        ? Array.prototype.map.call(items, function (li) { return li.textContent.trim(); }).join("\n")
        : target.textContent.trim();
      navigator.clipboard.writeText(text).then(function () {
        var label = button.textContent;
        button.textContent = "Now on your clipboard";
        setTimeout(function () { button.textContent = label; }, 2000);
      });
    });
  });

  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  var toggle = document.getElementById("use-recovery-code");
  var field = document.getElementById("code");
  var hint = document.getElementById("code-hint");
  if (toggle && field && hint) {
    // A page may arrive switched (a refused recovery code): its error stays.
    var openedAs = toggle.open;
    toggle.addEventListener("toggle", function () {
      field.setAttribute("inputmode", toggle.open ? "text" : "numeric");
      hint.textContent = hint.getAttribute(toggle.open ? "data-recovery-hint" : "data-totp-hint");
      // Switched by the person: an error about the other kind of code no longer applies.
      var error = document.querySelector("#flash.flash-error");
      if (error && toggle.open !== openedAs) { error.remove(); }
      field.focus();
    });
  }
});

// Security keys and passkeys (WebAuthn): the browser half of each ceremony.
// The server's JSON comes from webauthn-rs; binary fields travel as
// base64url. Key buttons stay hidden where the browser has no WebAuthn.
(function () {
  function b64uToBuf(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    var bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    return bytes.buffer;
  }
  function bufToB64u(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function stripNulls(o) {
    if (Array.isArray(o)) { return o.map(stripNulls); }
    if (o && typeof o === "object") {
      var r = {};
      Object.keys(o).forEach(function (k) { if (o[k] !== null) { r[k] = stripNulls(o[k]); } });
      return r;
    }
    return o;
  }
  function createOptions(ccr) {
    var pk = stripNulls(ccr.publicKey);
    pk.challenge = b64uToBuf(pk.challenge);
    pk.user.id = b64uToBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = b64uToBuf(c.id); });
    return { publicKey: pk };
  }
  function getOptions(rcr, mediation) {
    var pk = stripNulls(rcr.publicKey);
    pk.challenge = b64uToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64uToBuf(c.id); });
    if (pk.allowCredentials && pk.allowCredentials.length === 0) { delete pk.allowCredentials; }
    var opts = { publicKey: pk };
    if (mediation) { opts.mediation = mediation; }
    return opts;
  }
  function created(cred) {
    var r = cred.response;
    return {
      id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type,
      response: {
        attestationObject: bufToB64u(r.attestationObject),
        clientDataJSON: bufToB64u(r.clientDataJSON),
        transports: typeof r.getTransports === "function" ? r.getTransports() : undefined
      },
      extensions: cred.getClientExtensionResults()
    };
  }
  function asserted(cred) {
    var r = cred.response;
    return {
      id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type,
      response: {
        authenticatorData: bufToB64u(r.authenticatorData),
        clientDataJSON: bufToB64u(r.clientDataJSON),
        signature: bufToB64u(r.signature),
        userHandle: r.userHandle ? bufToB64u(r.userHandle) : null
      },
      extensions: cred.getClientExtensionResults()
    };
  }
  function csrf() {
    var input = document.querySelector('input[name="csrf_token"]');
    return input ? input.value : "";
  }
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body || {})
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (!res.ok) {
          var err = new Error(data.error || "That did not work. Reload the page and try again.");
          err.redirect = data.redirect;
          throw err;
        }
        return data;
      });
    });
  }
  function say(text, isError) {
    var status = document.getElementById("webauthn-status");
    if (!status) { return; }
    status.textContent = text;
    status.setAttribute("role", isError ? "alert" : "status");
    status.className = isError ? "flash flash-error" : "hint";
  }
  function failed(err) {
    if (err && err.name === "AbortError") { return; }
    if (err && err.redirect) { window.location.assign(err.redirect); return; }
    if (err && (err.name === "NotAllowedError" || err.name === "InvalidStateError")) {
      say(err.name === "InvalidStateError"
        ? "This key is already registered to your account."
        : "No key was used (the request was cancelled or timed out). Try again.", true);
      return;
    }
    say(err && err.message ? err.message : "That did not work. Try again.", true);
  }
  function go(data) { if (data && data.redirect) { window.location.assign(data.redirect); } }

  var autofill = null;
  function stopAutofill() { if (autofill) { autofill.abort(); autofill = null; } }

  function register(name) {
    say("Waiting for your security key or passkey…");
    return post("/settings/account/mfa/webauthn/register/start", { name: name })
      .then(function (c) {
        return navigator.credentials.create(createOptions(c.options)).then(function (cred) {
          return post("/settings/account/mfa/webauthn/register/finish", { ceremony: c.ceremony, credential: created(cred) });
        });
      }).then(go);
  }
  function assertion(startUrl, finishUrl, mediation) {
    stopAutofill();
    say("Waiting for your security key or passkey…");
    return post(startUrl).then(function (c) {
      var options = c.options;
      if (!mediation && options.mediation) { delete options.mediation; }
      return navigator.credentials.get(getOptions(options, mediation)).then(function (cred) {
        var body = { ceremony: c.ceremony, credential: asserted(cred) };
        // The code prompt's "Remember this browser", read when the key answers.
        var remember = document.getElementById("remember-browser");
        if (remember && finishUrl === "/login/two-factor/webauthn/finish") { body.remember = remember.checked; }
        return post(finishUrl, body);
      });
    });
  }
  function passkeyAutofill() {
    if (!PublicKeyCredential.isConditionalMediationAvailable) { return; }
    PublicKeyCredential.isConditionalMediationAvailable().then(function (yes) {
      if (!yes) { return; }
      post("/login/passkey/start").then(function (c) {
        autofill = new AbortController();
        var opts = getOptions(c.options, "conditional");
        opts.signal = autofill.signal;
        return navigator.credentials.get(opts).then(function (cred) {
          autofill = null;
          return post("/login/passkey/finish", { ceremony: c.ceremony, credential: asserted(cred) });
        });
      }).then(go, function (err) { if (err && err.name !== "AbortError") { failed(err); } });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("webauthn-ceremony");
    var add = document.getElementById("webauthn-add-form");
    if (!window.PublicKeyCredential || !window.fetch) {
      if (box) { say("This browser cannot use security keys or passkeys here."); }
      return;
    }
    document.querySelectorAll(".js-webauthn").forEach(function (el) { el.hidden = false; });
    if (add) { return; }
    if (!box) { return; }
    var kind = box.getAttribute("data-webauthn");
    var auto = box.getAttribute("data-auto") === "1";
    var run;
    var button;
    if (kind === "register") {
      button = document.getElementById("webauthn-register");
      run = function () { return register(box.getAttribute("data-name")); };
    } else if (kind === "second-step") {
      button = document.getElementById("two-factor-webauthn");
      run = function () { return assertion("/login/two-factor/webauthn/start", "/login/two-factor/webauthn/finish").then(go); };
    } else if (kind === "passkey") {
      button = document.getElementById("login-passkey");
      run = function () { return assertion("/login/passkey/start", "/login/passkey/finish").then(go); };
      if (box.getAttribute("data-autofill") === "1") { passkeyAutofill(); }
    } else if (kind === "sudo") {
      button = document.getElementById("sudo-webauthn");
      run = function () {
        return assertion("/settings/account/webauthn/confirm/start", "/settings/account/webauthn/confirm/finish").then(function () {
          // The key stands in for the password: continue with the action.
          var then = box.getAttribute("data-continue");
          if (then) { window.location.assign(then); return; }
          var form = document.getElementById("sudo-submit").form;
          var password = form.querySelector('input[name="password"]');
          if (password) { password.remove(); }
          form.submit();
        });
      };
    } else if (kind === "disable") {
      button = document.getElementById("mfa-disable-webauthn");
      run = function () {
        return assertion("/settings/account/webauthn/confirm/start", "/settings/account/mfa/disable/webauthn/finish").then(go);
      };
    }
    if (!run) { return; }
    if (button) { button.addEventListener("click", function () { run().catch(failed); }); }
    if (auto) { run().catch(failed); }
  });
})();
