// The OpenAPI 3.0 document of evstreamd's HTTP API, served at GET /api/openapi.json and checked
// against the real answers by tests/e2e/openapi.test.mjs.
#pragma once
#include <string>

namespace evstream::api {

const std::string& OpenApiJson();

}  // namespace evstream::api
