// The API's docs page: Swagger UI (gateway/docs/vendor/, from the npm package
// swagger-ui-dist pinned in package.json) rendering this gateway's /openapi.json.
// Everything comes from this origin: the validator badge (which would call
// validator.swagger.io) is off, and the page's Content-Security-Policy allows
// no other host anyway. "Authorize" takes the access token of POST /login.
window.addEventListener("load", () => {
  window.ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    displayOperationId: true,
    defaultModelsExpandDepth: 0,
    docExpansion: "none",
    filter: true,
  });
});
