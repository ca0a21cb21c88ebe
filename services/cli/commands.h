// The `amparo` operator CLI: one function per verb. Each returns the process
// exit code: 0 success, 1 failure, 2 usage error.
#pragma once

#include <string>
#include <vector>

namespace amparo::cli {

int RunCli(const std::vector<std::string>& args);

}  // namespace amparo::cli
