// A work's public page: choosing a language submits the form (a file, since the Content-Security-Policy
// allows no inline handler; without scripts the <noscript> button does it).
"use strict";
document.getElementById("language")?.addEventListener("change", (event) => event.target.form.submit());
