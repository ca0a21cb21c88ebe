// Shared helpers for ingest's CAP/GDACS tests: fixture paths and file reading.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace amparo::ingest::testing_support {

inline std::filesystem::path Fixture(const std::string& relative) {
  return std::filesystem::path(AMPARO_SOURCE_DIR) / ".." / "shared" / "fixtures" / relative;
}

inline std::string ReadFixture(const std::string& relative) {
  std::ifstream in(Fixture(relative), std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A minimal CAP 1.2 alert; `info` is inserted after <scope>.
inline std::string MinimalCap(const std::string& status, const std::string& msg_type, const std::string& extra,
                              const std::string& info, const std::string& identifier = "TEST-1") {
  return "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><identifier>" + identifier +
         "</identifier><sender>ops@example.org</sender><sent>2024-05-01T10:00:00+02:00</sent><status>" + status +
         "</status><msgType>" + msg_type + "</msgType><scope>Public</scope>" + extra + info + "</alert>";
}

inline std::string Info(const std::string& area) {
  return "<info><language>en</language><category>Met</category><event>Flood warning</event>"
         "<urgency>Immediate</urgency><severity>Severe</severity><certainty>Observed</certainty>"
         "<headline>Flood</headline><area><areaDesc>Town</areaDesc>" + area + "</area></info>";
}

}  // namespace amparo::ingest::testing_support
