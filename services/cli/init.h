// `amparo init DIR`: a new deployment directory with a commented config,
// CURVE keys for every daemon and the CLI, and the data/run directories.
#pragma once

#include <filesystem>
#include <string>

#include "common/status.h"

namespace amparo::cli {

struct InitOptions {
  std::filesystem::path dir;
  std::string listen = "127.0.0.1:8080";  // gateway.listen
  bool force = false;                     // overwrite an existing amparo.toml
};

// The daemons whose keys `init` creates, plus "amparo" for the CLI.
inline constexpr const char* kKeyOwners[] = {"ingest", "rules", "notify", "gateway", "amparo"};

Status InitDeployment(const InitOptions& options);
// The text of the amparo.toml that init writes: every key with its default
// and a comment saying what it bounds.
std::string DefaultConfigText(const std::string& listen);

}  // namespace amparo::cli
