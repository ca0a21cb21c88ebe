#include "common/json_text.h"

#include <boost/json.hpp>

#include <charconv>
#include <cmath>

namespace amparo {
namespace {

namespace json = boost::json;

void Write(const json::value& v, std::string* out) {
  switch (v.kind()) {
    case json::kind::null:
      *out += "null";
      return;
    case json::kind::bool_:
      *out += v.get_bool() ? "true" : "false";
      return;
    case json::kind::int64:
      *out += std::to_string(v.get_int64());
      return;
    case json::kind::uint64:
      *out += std::to_string(v.get_uint64());
      return;
    case json::kind::double_: {
      double d = v.get_double();
      if (!std::isfinite(d)) {
        *out += "null";
        return;
      }
      char buf[32];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
      out->append(buf, ec == std::errc() ? end : buf);
      return;
    }
    case json::kind::string:
      *out += json::serialize(v.get_string());
      return;
    case json::kind::array: {
      *out += '[';
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) *out += ',';
        first = false;
        Write(item, out);
      }
      *out += ']';
      return;
    }
    case json::kind::object: {
      *out += '{';
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) *out += ',';
        first = false;
        *out += json::serialize(json::string(kv.key()));
        *out += ':';
        Write(kv.value(), out);
      }
      *out += '}';
      return;
    }
  }
}

}  // namespace

std::string JsonText(const json::value& v) {
  std::string out;
  Write(v, &out);
  return out;
}

}  // namespace amparo
