// Calendar dates and RFC 3339 timestamps without time zones or locales
// (Howard Hinnant's days_from_civil algorithm): UTC only. Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace amparo::gateway {

// Days since 1970-01-01 for a proleptic Gregorian date.
int64_t DaysFromCivil(int year, unsigned month, unsigned day);
// Days since the epoch for "YYYY-MM-DD" (a real date, years 1900..9999), or nullopt.
std::optional<int64_t> ParseIsoDate(std::string_view text);
// "YYYY-MM-DD" of `days` since the epoch.
std::string FormatIsoDate(int64_t days);
// The UTC date (days since the epoch) that contains unix time `ms`.
int64_t DayOfMs(int64_t ms);
// Unix milliseconds of "YYYY-MM-DDTHH:MM:SS[.fff]Z" or "...+HH:MM"/"-HH:MM", or nullopt.
std::optional<int64_t> ParseRfc3339(std::string_view text);

}  // namespace amparo::gateway
