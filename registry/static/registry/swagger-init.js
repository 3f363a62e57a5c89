// Starts Swagger UI for /api/v1/docs/ (registry/api_swagger.html): a file of its own, since the
// Content-Security-Policy allows no inline script.
"use strict";

(function () {
  const root = document.getElementById("swagger-ui");
  const csrfHeader = root.dataset.csrfHeader;
  const csrfToken = root.dataset.csrfToken;
  window.ui = SwaggerUIBundle({
    url: root.dataset.schemaUrl,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    persistAuthorization: false,
    requestInterceptor: function (request) {
      // Requests made with the portal's session need its CSRF token; API keys do not.
      if (!["GET", undefined].includes(request.method) && request.credentials === "same-origin" && csrfHeader) {
        request.headers[csrfHeader] = csrfToken;
      }
      return request;
    },
  });
})();
