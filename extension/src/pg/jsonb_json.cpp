// Jsonb <-> nlohmann::json (see jsonb_json.hpp).
#include <nlohmann/json.hpp>  // first: PostgreSQL's port.h redefines snprintf
#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "pg/guard.hpp"
#include "pg/interrupts.hpp"
#include "pg/jsonb_json.hpp"

extern "C" {
#include "utils/builtins.h"  // numeric_out
#include "utils/fmgrprotos.h"  // jsonb_in
#include "utils/numeric.h"   // Numeric
}

namespace evstream::pg {
namespace {

// One iterator step, copied into palloc memory so that C++ can read it after PG_TRY ends.
struct Token {
  JsonbIteratorToken kind;
  enum jbvType type;
  const char* text;  // string or key (not NUL-terminated), or numeric text (NUL-terminated)
  int len;
  bool boolean;
};

nlohmann::json Scalar(const Token& t) {
  switch (t.type) {
    case jbvNull: return nullptr;
    case jbvBool: return t.boolean;
    case jbvString: return std::string(t.text, t.len);
    case jbvNumeric: {
      const char* s = t.text;
      bool integral = true;
      for (const char* p = s; *p; p++)
        if (*p == '.' || *p == 'e' || *p == 'E') integral = false;
      if (integral) {
        errno = 0;
        char* end = nullptr;
        long long v = std::strtoll(s, &end, 10);
        if (errno == 0 && *end == '\0') return static_cast<int64_t>(v);
      }
      return std::strtod(s, nullptr);
    }
    default: return nullptr;
  }
}

}  // namespace

nlohmann::json JsonbToJson(Jsonb* jsonb) {
  Token* tokens = nullptr;
  int count = 0;
  PgCall([&] {
    int cap = 16;
    tokens = static_cast<Token*>(palloc(sizeof(Token) * cap));
    JsonbIterator* it = JsonbIteratorInit(&jsonb->root);
    JsonbValue v;
    JsonbIteratorToken r;
    while ((r = JsonbIteratorNext(&it, &v, false)) != WJB_DONE) {
      if ((count & 0xFFFF) == 0) CHECK_FOR_INTERRUPTS();  // a huge document stays cancellable
      if (count == cap) {
        cap *= 2;
        tokens = static_cast<Token*>(repalloc(tokens, sizeof(Token) * cap));
      }
      Token* t = &tokens[count++];
      t->kind = r;
      t->type = v.type;
      t->text = nullptr;
      t->len = 0;
      t->boolean = false;
      if (r == WJB_KEY || r == WJB_VALUE || r == WJB_ELEM) {
        if (v.type == jbvString) {
          t->text = v.val.string.val;
          t->len = v.val.string.len;
        } else if (v.type == jbvNumeric) {
          t->text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
        } else if (v.type == jbvBool) {
          t->boolean = v.val.boolean;
        }
      } else if (r == WJB_BEGIN_ARRAY && v.val.array.rawScalar) {
        t->boolean = true;  // a raw scalar wrapped in a one-element array
      }
    }
  });

  // Rebuild the tree with a stack of open containers.
  std::vector<nlohmann::json> stack;
  std::vector<std::string> keys;
  std::vector<bool> raw;
  nlohmann::json result;
  auto put = [&](nlohmann::json value) {
    if (stack.empty()) {
      result = std::move(value);
    } else if (stack.back().is_object()) {
      stack.back()[keys.back()] = std::move(value);
    } else {
      stack.back().push_back(std::move(value));
    }
  };
  for (int i = 0; i < count; i++) {
    const Token& t = tokens[i];
    if ((i & 0xFFFF) == 0xFFFF) CheckForInterrupts();
    switch (t.kind) {
      case WJB_BEGIN_OBJECT:
        stack.emplace_back(nlohmann::json::object());
        raw.push_back(false);
        break;
      case WJB_BEGIN_ARRAY:
        stack.emplace_back(nlohmann::json::array());
        raw.push_back(t.boolean);
        break;
      case WJB_KEY:
        keys.emplace_back(t.text, t.len);
        break;
      case WJB_VALUE:
        put(Scalar(t));
        keys.pop_back();
        break;
      case WJB_ELEM:
        put(Scalar(t));
        break;
      case WJB_END_OBJECT:
      case WJB_END_ARRAY: {
        nlohmann::json done = std::move(stack.back());
        bool was_raw = raw.back();
        stack.pop_back();
        raw.pop_back();
        if (was_raw) done = done.empty() ? nlohmann::json() : done[0];
        bool in_object = !stack.empty() && stack.back().is_object();
        put(std::move(done));
        if (in_object) keys.pop_back();
        break;
      }
      default:
        break;
    }
  }
  PgCall([&] { pfree(tokens); });
  return result;
}

Jsonb* JsonToJsonb(const nlohmann::json& value) {
  std::string text = value.dump();
  const char* c = text.c_str();
  Jsonb* out = nullptr;
  PgCall([&] { out = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(c))); });
  return out;
}

}  // namespace evstream::pg
