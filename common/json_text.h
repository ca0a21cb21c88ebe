// JSON text for everything Amparo writes (API bodies, webhook bodies, CLI
// output). Boost.JSON 1.81 prints doubles as "1.45995E1": valid JSON but hard
// to read in an API; this prints the shortest form that round-trips
// ("14.5995"). Non-finite numbers become null. Thread-safe.
#pragma once

#include <boost/json/value.hpp>

#include <string>
#include <string_view>

namespace amparo {

std::string JsonText(const boost::json::value& value);

// Appends `text` as a JSON string literal, escaped exactly as Boost.JSON's
// serializer does (\" \\ \b \f \n \r \t, other control characters as \u00xx,
// UTF-8 as is): for text written directly, without building a DOM.
void AppendJsonString(std::string& out, std::string_view text);

}  // namespace amparo
