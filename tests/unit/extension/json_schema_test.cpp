// JSON Schema validator (evstream::json_schema): compile-time refusals and validation messages.
#include "evstream/json_schema.hpp"

#include <gtest/gtest.h>

namespace js = evstream::json_schema;
using nlohmann::json;

namespace {

js::Schema S(const char* text) { return js::Schema::Compile(json::parse(text)); }

std::string Error(const char* schema, const char* data) {
  auto p = S(schema).Validate(json::parse(data));
  return p ? *p : "valid";
}

std::string CompileError(const char* schema) {
  try {
    S(schema);
  } catch (const js::InvalidSchema& e) {
    return e.what();
  }
  return "compiled";
}

const char* kOrder = R"({
  "type": "object",
  "required": ["price", "sku"],
  "additionalProperties": false,
  "properties": {
    "price": {"type": "number", "minimum": 0},
    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"},
    "lines": {"type": "array", "minItems": 1, "items": {
      "type": "object", "properties": {"qty": {"type": "integer", "exclusiveMinimum": 0}}}},
    "status": {"enum": ["open", "paid"]},
    "id": {"type": "string", "format": "uuid"},
    "at": {"type": "string", "format": "date-time"},
    "email": {"type": ["string", "null"], "format": "email"}
  }
})";

}  // namespace

TEST(JsonSchema, ValidDocumentPasses) {
  EXPECT_EQ(Error(kOrder, R"({"price": 3.5, "sku": "ABC-1", "lines": [{"qty": 2}],
                              "status": "paid", "id": "0b7e7dee-87ac-4d5b-a4a6-2f1e7c1d0b5a",
                              "at": "2024-02-29T23:59:60.5+01:00", "email": null})"),
            "valid");
}

TEST(JsonSchema, MinimumViolationNamesPathAndRule) {
  EXPECT_EQ(Error(kOrder, R"({"price": -3, "sku": "ABC-1"})"), "data.price: -3 is less than minimum 0");
}

TEST(JsonSchema, NestedArrayPathIsNamed) {
  EXPECT_EQ(Error(kOrder, R"({"price": 1, "sku": "ABC-1", "lines": [{"qty": 1}, {"qty": 0}]})"),
            "data.lines[1].qty: 0 is not greater than exclusiveMinimum 0");
  EXPECT_EQ(Error(kOrder, R"({"price": 1, "sku": "ABC-1", "lines": [{"qty": 1.5}]})"),
            "data.lines[0].qty: expected integer, got number");
}

TEST(JsonSchema, RequiredAdditionalEnumPatternAndFormats) {
  EXPECT_EQ(Error(kOrder, R"({"price": 1})"), "data.sku: required property is missing");
  EXPECT_EQ(Error(kOrder, R"({"price": 1, "sku": "ABC-1", "x": 1})"),
            "data.x: property is not allowed (additionalProperties is false)");
  EXPECT_EQ(Error(kOrder, R"({"price": 1, "sku": "ABC-1", "status": "lost"})"),
            R"(data.status: "lost" is not one of ["open","paid"])");
  EXPECT_EQ(Error(kOrder, R"({"price": 1, "sku": "abc"})"),
            R"(data.sku: "abc" does not match pattern "^[A-Z]{3}-[0-9]+$")");
  EXPECT_EQ(Error(kOrder, R"({"price": 1, "sku": "ABC-1", "id": "nope"})"),
            R"(data.id: "nope" is not a valid uuid)");
  EXPECT_EQ(Error(kOrder, R"({"price": 1, "sku": "ABC-1", "at": "2023-02-29T00:00:00Z"})"),
            R"(data.at: "2023-02-29T00:00:00Z" is not a valid date-time (RFC 3339))");
  EXPECT_EQ(Error(kOrder, R"({"price": 1, "sku": "ABC-1", "email": "a@b@"})"),
            R"(data.email: "a@b@" is not a valid email address)");
  EXPECT_EQ(Error(kOrder, R"({"price": "1", "sku": "ABC-1"})"),
            "data.price: expected number, got string");
  EXPECT_EQ(Error(kOrder, R"({"price": 1, "sku": "ABC-1", "email": 5})"),
            "data.email: expected null or string, got integer");
}

TEST(JsonSchema, LengthsCountCodePointsAndItemsBounds) {
  const char* s = R"({"properties": {"n": {"minLength": 2, "maxLength": 3},
                                     "t": {"maxItems": 1}}})";
  EXPECT_EQ(Error(s, R"({"n": "éé"})"), "valid");
  EXPECT_EQ(Error(s, R"({"n": "é"})"), R"(data.n: "é" is shorter than minLength 2)");
  EXPECT_EQ(Error(s, R"({"n": "abcd"})"), R"(data.n: "abcd" is longer than maxLength 3)");
  EXPECT_EQ(Error(s, R"({"t": [1, 2]})"), "data.t: array has 2 items, more than maxItems 1");
}

TEST(JsonSchema, ConstMaximumAndExclusiveMaximum) {
  const char* s = R"({"properties": {"k": {"const": "v1"}, "m": {"maximum": 10},
                                     "e": {"exclusiveMaximum": 1.5}}})";
  EXPECT_EQ(Error(s, R"({"k": "v2"})"), R"(data.k: "v2" is not equal to const "v1")");
  EXPECT_EQ(Error(s, R"({"m": 10.0})"), "valid");
  EXPECT_EQ(Error(s, R"({"m": 11})"), "data.m: 11 is greater than maximum 10");
  EXPECT_EQ(Error(s, R"({"e": 1.5})"), "data.e: 1.5 is not less than exclusiveMaximum 1.5");
}

TEST(JsonSchema, AdditionalPropertiesSchemaAndBooleanSchemas) {
  EXPECT_EQ(Error(R"({"additionalProperties": {"type": "integer"}})", R"({"a": 1, "b": "x"})"),
            "data.b: expected integer, got string");
  EXPECT_EQ(Error(R"({"properties": {"gone": false}})", R"({"gone": 1})"),
            "data.gone: no value is allowed here (schema is false)");
  EXPECT_EQ(Error("true", R"({"anything": [1]})"), "valid");
}

TEST(JsonSchema, OddKeysAreQuotedInPaths) {
  EXPECT_EQ(Error(R"({"properties": {"a b": {"type": "string"}}})", R"({"a b": 1})"),
            R"(data["a b"]: expected string, got integer)");
}

TEST(JsonSchema, IntegerAcceptsWholeFloats) {
  EXPECT_EQ(Error(R"({"type": "integer"})", "2.0"), "valid");
  EXPECT_EQ(Error(R"({"enum": [1, 2]})", "2.0"), "valid");
}

TEST(JsonSchemaCompile, TypoKeywordIsRefused) {
  EXPECT_EQ(CompileError(R"({"properties": {"price": {"minimun": 0}}})"),
            R"(schema.properties.price: unknown keyword "minimun")");
}

TEST(JsonSchemaCompile, UnsupportedKeywordsAreRefused) {
  EXPECT_EQ(CompileError(R"({"oneOf": []})"), R"(schema: unknown keyword "oneOf")");
  EXPECT_EQ(CompileError(R"({"$ref": "#/x"})"), R"(schema: unknown keyword "$ref")");
}

TEST(JsonSchemaCompile, InvalidValuesAreRefused) {
  EXPECT_EQ(CompileError(R"({"type": "float"})"),
            R"(schema.type: unknown type "float" (use null, boolean, integer, number, string, array or object))");
  EXPECT_EQ(CompileError(R"({"minimum": "0"})"), "schema.minimum: must be a number");
  EXPECT_EQ(CompileError(R"({"minLength": -1})"), "schema.minLength: must be an integer from 0 to 2147483647");
  EXPECT_EQ(CompileError(R"({"required": "a"})"), "schema.required: must be an array of property names");
  EXPECT_EQ(CompileError(R"({"format": "ipv4"})"), R"(schema.format: must be "uuid", "date-time" or "email")");
  EXPECT_EQ(CompileError(R"({"enum": []})"), "schema.enum: must be a non-empty array");
  EXPECT_EQ(CompileError(R"({"items": [{}]})"), "schema.items: must be one schema (tuple form is not supported)");
  EXPECT_EQ(CompileError(R"({"minItems": 3, "maxItems": 1})"), "schema: minItems is greater than maxItems");
  EXPECT_EQ(CompileError("42"), "schema: a schema must be an object or a boolean");
  EXPECT_NE(CompileError(R"({"pattern": "(("})").find("schema.pattern: is not a valid regular expression"),
            std::string::npos);
}

TEST(JsonSchemaCompile, AnnotationsAreAccepted) {
  EXPECT_EQ(CompileError(R"({"$schema": "https://json-schema.org/draft/2020-12/schema",
                            "title": "t", "description": "d", "default": 1, "examples": [1]})"),
            "compiled");
}

TEST(JsonFormats, Uuid) {
  EXPECT_TRUE(js::IsUuid("0B7E7DEE-87ac-4d5b-a4a6-2f1e7c1d0b5a"));
  EXPECT_FALSE(js::IsUuid("0b7e7dee87ac4d5ba4a62f1e7c1d0b5a"));
  EXPECT_FALSE(js::IsUuid("0b7e7dee-87ac-4d5b-a4a6-2f1e7c1d0b5g"));
}

TEST(JsonFormats, DateTime) {
  EXPECT_TRUE(js::IsDateTime("2024-05-01T12:30:00Z"));
  EXPECT_TRUE(js::IsDateTime("2024-05-01t12:30:00.123-07:30"));
  EXPECT_FALSE(js::IsDateTime("2024-05-01 12:30:00Z"));
  EXPECT_FALSE(js::IsDateTime("2024-05-01T12:30:00"));
  EXPECT_FALSE(js::IsDateTime("2024-13-01T12:30:00Z"));
  EXPECT_FALSE(js::IsDateTime("2024-04-31T12:30:00Z"));
  EXPECT_FALSE(js::IsDateTime("2024-05-01T24:00:00Z"));
}

TEST(JsonFormats, Email) {
  EXPECT_TRUE(js::IsEmail("alice@example.com"));
  EXPECT_TRUE(js::IsEmail("a.b+tag@sub.example.org"));
  EXPECT_FALSE(js::IsEmail("alice"));
  EXPECT_FALSE(js::IsEmail("alice@"));
  EXPECT_FALSE(js::IsEmail("al ice@example.com"));
  EXPECT_FALSE(js::IsEmail("alice@-example.com"));
  EXPECT_FALSE(js::IsEmail("alice@example..com"));
}
