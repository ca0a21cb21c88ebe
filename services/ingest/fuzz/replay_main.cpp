// Regression driver for the libFuzzer targets in ordinary builds: runs every
// file of the directories given on the command line through the target's
// LLVMFuzzerTestOneInput (linked from fuzz_<name>.cpp), the way libFuzzer
// replays a corpus. A crash, sanitizer report or uncaught exception fails
// the test; so does an empty or missing directory (the seeds went missing).
// ctest runs it on services/ingest/fuzz/corpus/<name>/, in the Debug and the
// ASan+UBSan passes of tests/run.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  size_t files = 0;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    std::vector<std::filesystem::path> paths;
    for (const auto& entry : std::filesystem::directory_iterator(argv[i], ec)) {
      if (entry.is_regular_file()) paths.push_back(entry.path());
    }
    if (ec) {
      std::cerr << argv[i] << ": " << ec.message() << "\n";
      return 2;
    }
    std::sort(paths.begin(), paths.end());  // a fixed order: reproducible runs
    for (const auto& path : paths) {
      std::ifstream in(path, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ++files;
    }
  }
  if (files == 0) {
    std::cerr << "no seed files found\n";
    return 1;
  }
  std::cout << "replayed " << files << " seed files, no crash\n";
  return 0;
}
