#include "services/ingest/feed_types.h"

#include <fstream>

#include <cstring>

#include <cerrno>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

namespace amparo::ingest {
namespace {

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ReadInt(std::string_view text, size_t pos, size_t len, int* out) {
  if (pos + len > text.size()) return false;
  for (size_t i = pos; i < pos + len; ++i)
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
  auto [ptr, ec] = std::from_chars(text.data() + pos, text.data() + pos + len, *out);
  return ec == std::errc();
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::optional<int64_t> ToUnixMs(int year, int month, int day, int hour, int minute, int second, int millis,
                                int offset_minutes) {
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - int64_t{offset_minutes} * 60;
  return seconds * 1000 + millis;
}

}  // namespace

std::string TrimCopy(std::string_view text) {
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return std::string(text.substr(begin, end - begin));
}

std::string Quote(std::string_view text) {
  // Appended rather than "\"" + std::string(text) + "\"", which GCC 12
  // warns about (a false -Wrestrict) in every file that inlines it.
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  out += text;
  out += '"';
  return out;
}

std::string FeatureRejection::ToString() const {
  std::string out = field.empty() ? reason : field + ": " + reason;
  if (!id.empty()) out += " (id " + id + ")";
  return out;
}

std::string ParseWarning::ToString() const { return detail.empty() ? code : code + ": " + detail; }

std::optional<int64_t> ParseIsoTimeMs(std::string_view raw) {
  std::string text = TrimCopy(raw);
  int year, month, day, hour, minute, second;
  if (text.size() < 19 || text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != ' ') ||
      text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  if (!ReadInt(text, 0, 4, &year) || !ReadInt(text, 5, 2, &month) || !ReadInt(text, 8, 2, &day) ||
      !ReadInt(text, 11, 2, &hour) || !ReadInt(text, 14, 2, &minute) || !ReadInt(text, 17, 2, &second)) {
    return std::nullopt;
  }
  size_t pos = 19;
  int millis = 0;
  if (pos < text.size() && text[pos] == '.') {
    size_t start = ++pos;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) ++pos;
    if (pos == start) return std::nullopt;
    std::string digits = text.substr(start, std::min<size_t>(3, pos - start));
    while (digits.size() < 3) digits += '0';
    ReadInt(digits, 0, 3, &millis);
  }
  int offset = 0;
  if (pos == text.size()) {
    offset = 0;  // no zone: the GDACS API's convention is UTC
  } else if (text[pos] == 'Z' && pos + 1 == text.size()) {
    offset = 0;
  } else if ((text[pos] == '+' || text[pos] == '-') && pos + 6 == text.size() && text[pos + 3] == ':') {
    int oh, om;
    if (!ReadInt(text, pos + 1, 2, &oh) || !ReadInt(text, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = (text[pos] == '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  return ToUnixMs(year, month, day, hour, minute, second, millis, offset);
}

std::optional<int64_t> ParseRfc822TimeMs(std::string_view raw) {
  std::string text = TrimCopy(raw);
  // Optional "Sun, " prefix.
  if (size_t comma = text.find(','); comma != std::string::npos) text = TrimCopy(text.substr(comma + 1));
  // "29 Dec 2019 12:00:00 GMT" or "29 Jul 2021 07:35 GMT"
  std::array<std::string, 5> parts;
  size_t count = 0, pos = 0;
  while (pos < text.size() && count < parts.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string::npos) end = text.size();
    if (end > pos) parts[count++] = text.substr(pos, end - pos);
    pos = end + 1;
  }
  if (count < 4) return std::nullopt;
  static constexpr std::array<std::string_view, 12> kMonths = {"jan", "feb", "mar", "apr", "may", "jun",
                                                               "jul", "aug", "sep", "oct", "nov", "dec"};
  int day, year, month = 0;
  if (!ReadInt(parts[0], 0, parts[0].size(), &day) || !ReadInt(parts[2], 0, parts[2].size(), &year)) {
    return std::nullopt;
  }
  std::string mon = Lower(parts[1]).substr(0, 3);
  for (size_t i = 0; i < kMonths.size(); ++i)
    if (kMonths[i] == mon) month = static_cast<int>(i) + 1;
  if (month == 0) return std::nullopt;
  int hour = 0, minute = 0, second = 0;
  const std::string& clock = parts[3];
  if (clock.size() == 8 && clock[2] == ':' && clock[5] == ':') {
    if (!ReadInt(clock, 0, 2, &hour) || !ReadInt(clock, 3, 2, &minute) || !ReadInt(clock, 6, 2, &second))
      return std::nullopt;
  } else if (clock.size() == 5 && clock[2] == ':') {
    if (!ReadInt(clock, 0, 2, &hour) || !ReadInt(clock, 3, 2, &minute)) return std::nullopt;
  } else {
    return std::nullopt;
  }
  int offset = 0;
  if (count == 5) {
    const std::string& zone = parts[4];
    if ((zone[0] == '+' || zone[0] == '-') && zone.size() == 5) {
      int oh, om;
      if (!ReadInt(zone, 1, 2, &oh) || !ReadInt(zone, 3, 2, &om)) return std::nullopt;
      offset = (zone[0] == '-' ? -1 : 1) * (oh * 60 + om);
    } else if (zone != "GMT" && zone != "UT" && zone != "UTC" && zone != "Z") {
      return std::nullopt;
    }
  }
  return ToUnixMs(year, month, day, hour, minute, second, 0, offset);
}

v1::HazardKind HazardFromGdacsType(std::string_view event_type) {
  std::string type = Lower(TrimCopy(event_type));
  if (type == "eq") return v1::HAZARD_KIND_EARTHQUAKE;
  if (type == "tc") return v1::HAZARD_KIND_TROPICAL_CYCLONE;
  if (type == "fl") return v1::HAZARD_KIND_FLOOD;
  if (type == "vo") return v1::HAZARD_KIND_VOLCANO;
  if (type == "wf") return v1::HAZARD_KIND_WILDFIRE;
  if (type == "dr") return v1::HAZARD_KIND_DROUGHT;
  if (type == "ts") return v1::HAZARD_KIND_TSUNAMI;
  return v1::HAZARD_KIND_OTHER;
}

std::optional<v1::HazardKind> HazardFromText(std::string_view raw) {
  const std::string text = Lower(raw);
  // Order matters: "tsunami" alerts often mention the earthquake that caused them.
  static const std::array<std::pair<std::string_view, v1::HazardKind>, 17> kKeywords = {{
      {"tsunami", v1::HAZARD_KIND_TSUNAMI},
      {"earthquake", v1::HAZARD_KIND_EARTHQUAKE},
      {"seismic", v1::HAZARD_KIND_EARTHQUAKE},
      {"cyclone", v1::HAZARD_KIND_TROPICAL_CYCLONE},
      {"hurricane", v1::HAZARD_KIND_TROPICAL_CYCLONE},
      {"typhoon", v1::HAZARD_KIND_TROPICAL_CYCLONE},
      {"tropical storm", v1::HAZARD_KIND_TROPICAL_CYCLONE},
      {"flood", v1::HAZARD_KIND_FLOOD},
      {"volcan", v1::HAZARD_KIND_VOLCANO},
      {"wildfire", v1::HAZARD_KIND_WILDFIRE},
      {"bushfire", v1::HAZARD_KIND_WILDFIRE},
      {"forest fire", v1::HAZARD_KIND_WILDFIRE},
      {"fire", v1::HAZARD_KIND_WILDFIRE},
      {"drought", v1::HAZARD_KIND_DROUGHT},
      {"riot", v1::HAZARD_KIND_CIVIL_UNREST},
      {"civil unrest", v1::HAZARD_KIND_CIVIL_UNREST},
      {"armed conflict", v1::HAZARD_KIND_CONFLICT},
  }};
  for (const auto& [keyword, kind] : kKeywords) {
    if (text.find(keyword) != std::string::npos) return kind;
  }
  return std::nullopt;
}

v1::Severity SeverityFromGdacsLevel(std::string_view raw) {
  std::string level = Lower(TrimCopy(raw));
  if (level == "red") return v1::SEVERITY_SEVERE;
  if (level == "orange") return v1::SEVERITY_MODERATE;
  if (level == "green") return v1::SEVERITY_MINOR;
  return v1::SEVERITY_UNKNOWN;
}

v1::EventStatus ApplyExercise(v1::EventStatus status, const FeedContext& context) {
  if (context.exercise && status == v1::EVENT_STATUS_ACTUAL) return v1::EVENT_STATUS_EXERCISE;
  return status;
}

std::string TextPosition(std::string_view text, size_t offset) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column) + " (byte " +
         std::to_string(offset) + ")";
}

Result<std::string> ReadBoundedFile(const std::filesystem::path& file, int64_t max_file_bytes) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(file, ec);
  if (ec) return NotFound("cannot stat " + file.string() + ": " + ec.message());
  if (size > static_cast<uintmax_t>(max_file_bytes)) {
    return Status(StatusCode::kResourceExhausted,
                  "file is " + std::to_string(size) + " bytes, above the limit of " +
                      std::to_string(max_file_bytes) + " bytes",
                  "ingest.max_file_bytes");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return Unavailable("cannot open " + file.string() + ": " + std::strerror(errno));
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size)) {
    return Unavailable("short read of " + file.string() + " (changed while reading?)");
  }
  return bytes;
}

}  // namespace amparo::ingest
