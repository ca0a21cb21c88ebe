#include "services/gateway/json_fields.h"

#include <algorithm>
#include <string>

namespace amparo::gateway {

Status RejectUnknownFields(const boost::json::object& o, std::initializer_list<std::string_view> allowed,
                           std::string_view prefix, std::initializer_list<std::string_view> ignored) {
  for (const auto& kv : o) {
    if (std::find(allowed.begin(), allowed.end(), kv.key()) != allowed.end()) continue;
    if (std::find(ignored.begin(), ignored.end(), kv.key()) != ignored.end()) continue;
    std::string accepted;
    for (auto a : allowed) accepted += (accepted.empty() ? "" : ", ") + std::string(a);
    const std::string field =
        prefix.empty() ? std::string(kv.key()) : std::string(prefix) + "." + std::string(kv.key());
    return InvalidArgument("unknown field (accepted: " + accepted + ")", field);
  }
  return Status::Ok();
}

}  // namespace amparo::gateway
