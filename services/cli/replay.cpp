#include "services/cli/replay.h"

#include "common/crypto.h"

namespace amparo::cli {

Result<std::vector<std::filesystem::path>> ReplayFiles(const Config& config,
                                                       const std::vector<std::filesystem::path>& files,
                                                       bool exercise) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path tmp_dir = config.ingest.spool_dir / "tmp";
  fs::create_directories(tmp_dir, ec);
  if (ec) return Internal("creating " + tmp_dir.string() + ": " + ec.message());
  // Check every file first: a replay is all or nothing.
  for (const auto& f : files) {
    if (!fs::is_regular_file(f, ec)) return NotFound(f.string() + ": no such file");
  }
  std::vector<fs::path> written;
  for (const auto& f : files) {
    // A unique prefix keeps repeated replays of one file apart and in order.
    std::string stem = f.stem().string();
    std::string name = std::to_string(written.size()) + "-" + NewId().substr(0, 8) + "-" + stem +
                       (exercise ? ".exercise.json" : ".json");
    fs::path tmp = tmp_dir / name;
    fs::copy_file(f, tmp, fs::copy_options::overwrite_existing, ec);
    if (ec) return Internal("copying " + f.string() + ": " + ec.message());
    fs::path dest = config.ingest.spool_dir / name;
    fs::rename(tmp, dest, ec);
    if (ec) return Internal("moving into spool " + dest.string() + ": " + ec.message());
    written.push_back(dest);
  }
  return written;
}

}  // namespace amparo::cli
