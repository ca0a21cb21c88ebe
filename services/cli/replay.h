// `amparo replay FILE...`: hands feed files to amparo-ingest through its
// spool directory (copied under a temporary name, then renamed, so ingest
// never sees half a file).
#pragma once

#include <filesystem>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace amparo::cli {

// Returns the spool paths written. With `exercise`, every event in the files
// is marked as an exercise (CAP status Exercise) end to end.
Result<std::vector<std::filesystem::path>> ReplayFiles(const Config& config,
                                                       const std::vector<std::filesystem::path>& files,
                                                       bool exercise);

}  // namespace amparo::cli
