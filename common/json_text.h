// JSON text for everything Amparo writes (API bodies, webhook bodies, CLI
// output). Boost.JSON 1.81 prints doubles as "1.45995E1": valid JSON but hard
// to read in an API; this prints the shortest form that round-trips
// ("14.5995"). Non-finite numbers become null. Thread-safe.
#pragma once

#include <boost/json/value.hpp>

#include <string>

namespace amparo {

std::string JsonText(const boost::json::value& value);

}  // namespace amparo
