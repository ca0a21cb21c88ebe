// Field checks shared by every JSON body the gateway accepts (registrants,
// subscriptions, silences, decisions, operator events). Thread-safe.
#pragma once

#include <boost/json/object.hpp>

#include <initializer_list>
#include <string_view>

#include "common/status.h"

namespace amparo::gateway {

// The first field of `o` neither in `allowed` nor in `ignored` is an
// INVALID_ARGUMENT naming it ("<prefix>.<field>", or "<field>" without a
// prefix) and listing what is accepted: nothing unexpected (an immigration
// status, say) slips into a record.
Status RejectUnknownFields(const boost::json::object& o, std::initializer_list<std::string_view> allowed,
                           std::string_view prefix = "", std::initializer_list<std::string_view> ignored = {});

}  // namespace amparo::gateway
