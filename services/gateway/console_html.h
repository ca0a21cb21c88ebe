// The operator console: one self-contained HTML page (services/gateway/
// console/index.html), compiled into the binary by embed_console.cmake so
// the gateway serves it without files on disk.
#pragma once

#include <string_view>

namespace amparo::gateway {

// The page, served at GET /.
std::string_view ConsoleHtml();

}  // namespace amparo::gateway
