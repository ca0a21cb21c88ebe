#include "services/gateway/civil_date.h"

#include <cstdio>

namespace amparo::gateway {
namespace {

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

}  // namespace

int64_t DaysFromCivil(int y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::optional<int64_t> ParseIsoDate(std::string_view s) {
  int y = 0, m = 0, d = 0;
  if (s.size() != 10 || s[4] != '-' || s[7] != '-' || !Digits(s, 0, 4, &y) || !Digits(s, 5, 2, &m) ||
      !Digits(s, 8, 2, &d)) {
    return std::nullopt;
  }
  if (y < 1900 || m < 1 || m > 12 || d < 1 || static_cast<unsigned>(d) > DaysInMonth(y, m))
    return std::nullopt;
  return DaysFromCivil(y, m, d);
}

std::string FormatIsoDate(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = y + (m <= 2);
  if (year < 0 || year > 9999) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(year), m, d);
    return buf;
  }
  // By hand: a bulk import formats the default retention date per row, and
  // snprintf was ~6% of parsing and validating one.
  const auto yy = static_cast<unsigned>(year);
  return {static_cast<char>('0' + yy / 1000),    static_cast<char>('0' + yy / 100 % 10),
          static_cast<char>('0' + yy / 10 % 10), static_cast<char>('0' + yy % 10),
          '-',                                   static_cast<char>('0' + m / 10),
          static_cast<char>('0' + m % 10),       '-',
          static_cast<char>('0' + d / 10),       static_cast<char>('0' + d % 10)};
}

int64_t DayOfMs(int64_t ms) {
  int64_t days = ms / 86'400'000;
  if (ms % 86'400'000 < 0) --days;
  return days;
}

std::optional<int64_t> ParseRfc3339(std::string_view s) {
  if (s.size() < 20 || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') return std::nullopt;
  auto day = ParseIsoDate(s.substr(0, 10));
  int hh = 0, mm = 0, ss = 0;
  if (!day || !Digits(s, 11, 2, &hh) || !Digits(s, 14, 2, &mm) || !Digits(s, 17, 2, &ss) || hh > 23 ||
      mm > 59 || ss > 60) {
    return std::nullopt;
  }
  size_t pos = 19;
  int64_t millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) millis = millis * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (size_t i = digits; i < 3; ++i) millis *= 10;
  }
  int64_t offset_min = 0;
  if (pos + 1 == s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    // UTC
  } else if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':') {
    int oh = 0, om = 0;
    if (!Digits(s, pos + 1, 2, &oh) || !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59) return std::nullopt;
    offset_min = (s[pos] == '+' ? 1 : -1) * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  return ((*day * 86400 + hh * 3600 + mm * 60 + ss) - offset_min * 60) * 1000 + millis;
}

}  // namespace amparo::gateway
