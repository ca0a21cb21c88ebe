#include "services/ingest/acled_parser.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <sstream>
#include <unordered_map>

namespace amparo::ingest {
namespace {

constexpr char kBom[] = "\xEF\xBB\xBF";

// ISO 3166-1 numeric -> alpha-3, sorted by code (Debian iso-codes 4.15,
// /usr/share/iso-codes/json/iso_3166-1.json).
struct NumericIso3 {
  int numeric;
  char alpha3[4];
};
constexpr NumericIso3 kIsoNumeric[] = {
    {4, "AFG"}, {8, "ALB"}, {10, "ATA"}, {12, "DZA"}, {16, "ASM"}, {20, "AND"}, {24, "AGO"}, {28, "ATG"},
    {31, "AZE"}, {32, "ARG"}, {36, "AUS"}, {40, "AUT"}, {44, "BHS"}, {48, "BHR"}, {50, "BGD"}, {51, "ARM"},
    {52, "BRB"}, {56, "BEL"}, {60, "BMU"}, {64, "BTN"}, {68, "BOL"}, {70, "BIH"}, {72, "BWA"}, {74, "BVT"},
    {76, "BRA"}, {84, "BLZ"}, {86, "IOT"}, {90, "SLB"}, {92, "VGB"}, {96, "BRN"}, {100, "BGR"},
    {104, "MMR"}, {108, "BDI"}, {112, "BLR"}, {116, "KHM"}, {120, "CMR"}, {124, "CAN"}, {132, "CPV"},
    {136, "CYM"}, {140, "CAF"}, {144, "LKA"}, {148, "TCD"}, {152, "CHL"}, {156, "CHN"}, {158, "TWN"},
    {162, "CXR"}, {166, "CCK"}, {170, "COL"}, {174, "COM"}, {175, "MYT"}, {178, "COG"}, {180, "COD"},
    {184, "COK"}, {188, "CRI"}, {191, "HRV"}, {192, "CUB"}, {196, "CYP"}, {203, "CZE"}, {204, "BEN"},
    {208, "DNK"}, {212, "DMA"}, {214, "DOM"}, {218, "ECU"}, {222, "SLV"}, {226, "GNQ"}, {231, "ETH"},
    {232, "ERI"}, {233, "EST"}, {234, "FRO"}, {238, "FLK"}, {239, "SGS"}, {242, "FJI"}, {246, "FIN"},
    {248, "ALA"}, {250, "FRA"}, {254, "GUF"}, {258, "PYF"}, {260, "ATF"}, {262, "DJI"}, {266, "GAB"},
    {268, "GEO"}, {270, "GMB"}, {275, "PSE"}, {276, "DEU"}, {288, "GHA"}, {292, "GIB"}, {296, "KIR"},
    {300, "GRC"}, {304, "GRL"}, {308, "GRD"}, {312, "GLP"}, {316, "GUM"}, {320, "GTM"}, {324, "GIN"},
    {328, "GUY"}, {332, "HTI"}, {334, "HMD"}, {336, "VAT"}, {340, "HND"}, {344, "HKG"}, {348, "HUN"},
    {352, "ISL"}, {356, "IND"}, {360, "IDN"}, {364, "IRN"}, {368, "IRQ"}, {372, "IRL"}, {376, "ISR"},
    {380, "ITA"}, {384, "CIV"}, {388, "JAM"}, {392, "JPN"}, {398, "KAZ"}, {400, "JOR"}, {404, "KEN"},
    {408, "PRK"}, {410, "KOR"}, {414, "KWT"}, {417, "KGZ"}, {418, "LAO"}, {422, "LBN"}, {426, "LSO"},
    {428, "LVA"}, {430, "LBR"}, {434, "LBY"}, {438, "LIE"}, {440, "LTU"}, {442, "LUX"}, {446, "MAC"},
    {450, "MDG"}, {454, "MWI"}, {458, "MYS"}, {462, "MDV"}, {466, "MLI"}, {470, "MLT"}, {474, "MTQ"},
    {478, "MRT"}, {480, "MUS"}, {484, "MEX"}, {492, "MCO"}, {496, "MNG"}, {498, "MDA"}, {499, "MNE"},
    {500, "MSR"}, {504, "MAR"}, {508, "MOZ"}, {512, "OMN"}, {516, "NAM"}, {520, "NRU"}, {524, "NPL"},
    {528, "NLD"}, {531, "CUW"}, {533, "ABW"}, {534, "SXM"}, {535, "BES"}, {540, "NCL"}, {548, "VUT"},
    {554, "NZL"}, {558, "NIC"}, {562, "NER"}, {566, "NGA"}, {570, "NIU"}, {574, "NFK"}, {578, "NOR"},
    {580, "MNP"}, {581, "UMI"}, {583, "FSM"}, {584, "MHL"}, {585, "PLW"}, {586, "PAK"}, {591, "PAN"},
    {598, "PNG"}, {600, "PRY"}, {604, "PER"}, {608, "PHL"}, {612, "PCN"}, {616, "POL"}, {620, "PRT"},
    {624, "GNB"}, {626, "TLS"}, {630, "PRI"}, {634, "QAT"}, {638, "REU"}, {642, "ROU"}, {643, "RUS"},
    {646, "RWA"}, {652, "BLM"}, {654, "SHN"}, {659, "KNA"}, {660, "AIA"}, {662, "LCA"}, {663, "MAF"},
    {666, "SPM"}, {670, "VCT"}, {674, "SMR"}, {678, "STP"}, {682, "SAU"}, {686, "SEN"}, {688, "SRB"},
    {690, "SYC"}, {694, "SLE"}, {702, "SGP"}, {703, "SVK"}, {704, "VNM"}, {705, "SVN"}, {706, "SOM"},
    {710, "ZAF"}, {716, "ZWE"}, {724, "ESP"}, {728, "SSD"}, {729, "SDN"}, {732, "ESH"}, {740, "SUR"},
    {744, "SJM"}, {748, "SWZ"}, {752, "SWE"}, {756, "CHE"}, {760, "SYR"}, {762, "TJK"}, {764, "THA"},
    {768, "TGO"}, {772, "TKL"}, {776, "TON"}, {780, "TTO"}, {784, "ARE"}, {788, "TUN"}, {792, "TUR"},
    {795, "TKM"}, {796, "TCA"}, {798, "TUV"}, {800, "UGA"}, {804, "UKR"}, {807, "MKD"}, {818, "EGY"},
    {826, "GBR"}, {831, "GGY"}, {832, "JEY"}, {833, "IMN"}, {834, "TZA"}, {840, "USA"}, {850, "VIR"},
    {854, "BFA"}, {858, "URY"}, {860, "UZB"}, {862, "VEN"}, {876, "WLF"}, {882, "WSM"}, {887, "YEM"},
    {894, "ZMB"},
};

// RFC 4180 records from a stream, one at a time, with the line each starts
// on. A malformed record is still consumed to its end (so the next one
// starts in the right place) and comes back with `error` set.
class CsvRecordReader {
 public:
  CsvRecordReader(std::istream& in, size_t max_field_bytes) : buf_(in.rdbuf()), max_field_bytes_(max_field_bytes) {}

  void SkipBom() {
    for (int i = 0; i < 3; ++i) {
      if (buf_->sgetc() != static_cast<unsigned char>(kBom[i])) {
        // A partial BOM is not a BOM: put back what was taken.
        for (int j = i - 1; j >= 0; --j) buf_->sputbackc(kBom[j]);
        return;
      }
      buf_->sbumpc();
    }
  }

  // False at end of input. `error` is "" for a good record.
  bool Next(std::vector<std::string>* fields, int64_t* start_line, std::string* error) {
    fields->clear();
    error->clear();
    if (Peek() == EOF) return false;
    *start_line = line_;
    std::string field;
    bool field_too_long = false;
    auto add = [&](char c) {
      if (field.size() >= max_field_bytes_) {
        field_too_long = true;
        return;
      }
      field += c;
    };
    auto finish_field = [&] {
      if (field_too_long && error->empty()) {
        *error = "field " + std::to_string(fields->size() + 1) + " is longer than " +
                 std::to_string(max_field_bytes_) + " bytes";
      }
      fields->push_back(std::move(field));
      field.clear();
      field_too_long = false;
    };
    bool at_field_start = true;
    while (true) {
      int c = Get();
      if (c == EOF) {
        finish_field();
        return true;
      }
      if (at_field_start && c == '"') {
        const int64_t opened = line_;
        at_field_start = false;
        while (true) {
          int q = Get();
          if (q == EOF) {
            if (error->empty()) *error = "unterminated quoted field (opened on line " + std::to_string(opened) + ")";
            finish_field();
            return true;
          }
          if (q == '"') {
            if (Peek() == '"') {
              Get();
              add('"');
              continue;
            }
            break;
          }
          add(static_cast<char>(q));
        }
        int after = Peek();
        if (after != ',' && after != '\r' && after != '\n' && after != EOF && error->empty()) {
          *error = "unexpected character after a closing quote in field " + std::to_string(fields->size() + 1);
        }
        continue;  // the rest, if any, is read as unquoted text
      }
      at_field_start = false;
      if (c == ',') {
        finish_field();
        at_field_start = true;
        continue;
      }
      if (c == '\r' || c == '\n') {
        if (c == '\r' && Peek() == '\n') Get();
        finish_field();
        return true;
      }
      add(static_cast<char>(c));
    }
  }

 private:
  int Peek() {
    int c = buf_->sgetc();
    return c == std::char_traits<char>::eof() ? EOF : c;
  }
  int Get() {
    int c = buf_->sbumpc();
    if (c == std::char_traits<char>::eof()) return EOF;
    if (c == '\n' || (c == '\r' && buf_->sgetc() != '\n')) ++line_;
    return c;
  }

  std::streambuf* buf_;
  size_t max_field_bytes_;
  int64_t line_ = 1;
};

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> ParseDouble(std::string_view s) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<int64_t> DaysToMs(int y, unsigned m, unsigned d) {
  using namespace std::chrono;
  year_month_day ymd{year{y}, month{m}, day{d}};
  if (!ymd.ok()) return std::nullopt;
  return duration_cast<milliseconds>(sys_days{ymd}.time_since_epoch()).count();
}

// ACLED's API writes "2024-01-15"; its older CSV exports "15 January 2024".
std::optional<int64_t> ParseEventDate(std::string_view s) {
  if (s.size() == 10 && s[4] == '-' && s[7] == '-') {
    auto y = ParseInt(s.substr(0, 4)), m = ParseInt(s.substr(5, 2)), d = ParseInt(s.substr(8, 2));
    if (!y || !m || !d || *m < 1 || *m > 12 || *d < 1 || *d > 31) return std::nullopt;
    return DaysToMs(static_cast<int>(*y), static_cast<unsigned>(*m), static_cast<unsigned>(*d));
  }
  static constexpr std::string_view kMonths[] = {"january", "february", "march",     "april",   "may",      "june",
                                                 "july",    "august",   "september", "october", "november", "december"};
  std::istringstream words{std::string(s)};
  std::string day_text, month_text, year_text, extra;
  if (!(words >> day_text >> month_text >> year_text) || (words >> extra)) return std::nullopt;
  auto d = ParseInt(day_text), y = ParseInt(year_text);
  month_text = Lower(month_text);
  auto it = std::find(std::begin(kMonths), std::end(kMonths), month_text);
  if (!d || !y || it == std::end(kMonths) || *d < 1 || *d > 31) return std::nullopt;
  return DaysToMs(static_cast<int>(*y), static_cast<unsigned>(it - std::begin(kMonths) + 1),
                  static_cast<unsigned>(*d));
}


// Column positions by name for one file.
class Header {
 public:
  Status Read(const std::vector<std::string>& names, int max_columns) {
    if (static_cast<int>(names.size()) > max_columns) {
      return InvalidArgument("header has " + std::to_string(names.size()) + " columns, more than the bound " +
                             std::to_string(max_columns));
    }
    for (size_t i = 0; i < names.size(); ++i) {
      std::string name = Lower(Trim(names[i]));
      if (name.empty()) continue;
      if (!index_.emplace(name, i).second) return InvalidArgument("duplicate column", name);
    }
    width_ = names.size();
    return Status::Ok();
  }
  bool Has(std::string_view name) const { return index_.count(std::string(name)) > 0; }
  // The trimmed value of `name` in `row`, "" when the column is absent.
  std::string Get(const std::vector<std::string>& row, std::string_view name) const {
    auto it = index_.find(std::string(name));
    return it == index_.end() || it->second >= row.size() ? std::string() : Trim(row[it->second]);
  }
  size_t width() const { return width_; }

 private:
  std::unordered_map<std::string, size_t> index_;
  size_t width_ = 0;
};

struct RowProblem {
  std::string column;
  std::string reason;
};

// Fills `event` from one events-file row or names the first problem.
std::optional<RowProblem> ReadEventRow(const Header& h, const std::vector<std::string>& row,
                                       const AcledParseOptions& options, v1::CrisisEvent* event,
                                       std::vector<std::string>* warnings, int64_t line) {
  const std::string id = h.Get(row, "event_id_cnty");
  if (id.empty()) return RowProblem{"event_id_cnty", "must not be empty"};
  if (id.size() > 64 || id.find_first_of(" \t\r\n:") != std::string::npos) {
    return RowProblem{"event_id_cnty", "must be at most 64 characters without spaces or colons, got " + Quote(id)};
  }
  const std::string ts_text = h.Get(row, "timestamp");
  auto ts = ParseInt(ts_text);
  // Unix seconds up to the year 5138: anything larger is a unit mix-up (ms).
  if (!ts || *ts < 0 || *ts > 99'999'999'999) {
    return RowProblem{"timestamp", "must be unix seconds (a non-negative integer), got " + Quote(ts_text)};
  }
  const std::string event_type = h.Get(row, "event_type");
  if (event_type.empty()) return RowProblem{"event_type", "must not be empty"};
  const std::string date_text = h.Get(row, "event_date");
  auto onset = ParseEventDate(date_text);
  if (!onset) return RowProblem{"event_date", "must be YYYY-MM-DD or \"D Month YYYY\", got " + Quote(date_text)};
  const std::string lat_text = h.Get(row, "latitude"), lon_text = h.Get(row, "longitude");
  auto lat = ParseDouble(lat_text);
  if (!lat) return RowProblem{"latitude", "must be a number, got " + Quote(lat_text)};
  if (*lat < -90 || *lat > 90) return RowProblem{"latitude", "latitude " + lat_text + " out of range -90..90"};
  auto lon = ParseDouble(lon_text);
  if (!lon) return RowProblem{"longitude", "must be a number, got " + Quote(lon_text)};
  if (*lon < -180 || *lon > 180) {
    return RowProblem{"longitude", "longitude " + lon_text + " out of range -180..180"};
  }
  const std::string iso_text = h.Get(row, "iso");
  auto iso = ParseInt(iso_text);
  if (!iso || *iso < 0 || *iso > 999) {
    return RowProblem{"iso", "must be an ISO 3166-1 numeric code (0..999), got " + Quote(iso_text)};
  }
  std::optional<int64_t> fatalities;
  if (const std::string f = h.Get(row, "fatalities"); !f.empty()) {
    fatalities = ParseInt(f);
    if (!fatalities || *fatalities < 0) {
      return RowProblem{"fatalities", "must be a non-negative integer, got " + Quote(f)};
    }
  }

  std::optional<std::string_view> iso3 = Iso3FromNumeric(static_cast<int>(*iso));
  if (!iso3) {
    warnings->push_back("line " + std::to_string(line) + ": iso: " + iso_text +
                        " is not an ISO 3166-1 numeric code; no ISO3 geocode (event_id_cnty " + id + ")");
  }
  event->set_event_id(std::string(kAcledSource) + ":" + id);
  event->set_source(std::string(kAcledSource));
  event->set_source_id(id);
  event->set_revision(*ts * 1000);
  event->set_status(options.status);
  event->set_msg_type(v1::MESSAGE_TYPE_ALERT);
  event->set_hazard(AcledHazard(event_type));
  event->set_source_hazard_code(event_type);
  if (fatalities) event->mutable_metrics()->set_fatalities(*fatalities);
  // 1..3 per the ACLED codebook; anything else is left out (the footprint
  // then assumes the coordinates are exact).
  if (auto precision = ParseInt(h.Get(row, "geo_precision")); precision && *precision >= 1 && *precision <= 3)
    event->mutable_metrics()->set_geo_precision(static_cast<int32_t>(*precision));
  event->mutable_origin()->set_lat(*lat);
  event->mutable_origin()->set_lon(*lon);
  std::string place;
  for (const char* column : {"location", "admin2", "admin1", "country"}) {
    std::string part = h.Get(row, column);
    if (part.empty() || place.find(part) != std::string::npos) continue;
    place += (place.empty() ? "" : ", ") + part;
  }
  event->set_place(place);
  v1::Area* area = event->add_areas();
  area->set_description(place);
  if (iso3) {
    v1::Geocode* code = area->add_geocodes();
    code->set_name("ISO3");
    code->set_value(std::string(*iso3));
  }
  const std::string sub_type = h.Get(row, "sub_event_type");
  v1::LocalizedText* text = event->add_texts();
  text->set_language("en");
  text->set_headline((sub_type.empty() ? event_type : sub_type) + (place.empty() ? "" : " in " + place));
  text->set_description(h.Get(row, "notes"));
  event->set_onset_ms(*onset);
  event->set_sent_ms(*ts * 1000);
  if (options.received_ms != 0) event->set_received_ms(options.received_ms);
  return std::nullopt;
}

std::optional<RowProblem> ReadDeletionRow(const Header& h, const std::vector<std::string>& row,
                                          const AcledParseOptions& options, v1::CrisisEvent* event) {
  const std::string id = h.Get(row, "event_id_cnty");
  if (id.empty()) return RowProblem{"event_id_cnty", "must not be empty"};
  if (id.size() > 64 || id.find_first_of(" \t\r\n:") != std::string::npos) {
    return RowProblem{"event_id_cnty", "must be at most 64 characters without spaces or colons, got " + Quote(id)};
  }
  const std::string ts_text = h.Get(row, "timestamp");
  auto ts = ParseInt(ts_text);
  if (!ts || *ts < 0 || *ts > 99'999'999'999) {
    return RowProblem{"timestamp", "must be unix seconds (a non-negative integer), got " + Quote(ts_text)};
  }
  event->set_event_id(std::string(kAcledSource) + ":" + id);
  event->set_source(std::string(kAcledSource));
  event->set_source_id(id);
  event->set_revision(*ts * 1000);
  event->set_status(options.status);
  event->set_msg_type(v1::MESSAGE_TYPE_CANCEL);
  v1::EventReference* ref = event->add_references();
  ref->set_source(std::string(kAcledSource));
  ref->set_source_id(id);
  event->set_sent_ms(*ts * 1000);
  if (options.received_ms != 0) event->set_received_ms(options.received_ms);
  return std::nullopt;
}

}  // namespace

std::string RowRejection::ToString() const {
  std::string out = "line " + std::to_string(line) + ": ";
  if (!column.empty()) out += column + ": ";
  out += reason;
  if (!event_id_cnty.empty()) out += " (event_id_cnty " + event_id_cnty + ")";
  return out;
}

std::optional<std::string_view> Iso3FromNumeric(int numeric) {
  auto it = std::lower_bound(std::begin(kIsoNumeric), std::end(kIsoNumeric), numeric,
                             [](const NumericIso3& e, int n) { return e.numeric < n; });
  if (it == std::end(kIsoNumeric) || it->numeric != numeric) return std::nullopt;
  return std::string_view(it->alpha3, 3);
}

v1::HazardKind AcledHazard(std::string_view event_type) {
  const std::string type = Lower(std::string(event_type));
  if (type == "battles" || type == "explosions/remote violence" || type == "violence against civilians") {
    return v1::HAZARD_KIND_CONFLICT;
  }
  if (type == "riots" || type == "protests") return v1::HAZARD_KIND_CIVIL_UNREST;
  return v1::HAZARD_KIND_OTHER;
}

Result<AcledSummary> ParseAcledCsvStream(std::istream& in, const AcledParseOptions& options,
                                         const std::function<void(v1::CrisisEvent)>& on_event,
                                         const std::function<void(RowRejection)>& on_rejection) {
  CsvRecordReader reader(in, options.max_field_bytes);
  reader.SkipBom();
  std::vector<std::string> fields;
  int64_t line = 0;
  std::string error;
  // The header is the first non-blank record.
  bool have_header = false;
  while (reader.Next(&fields, &line, &error)) {
    if (fields.size() == 1 && Trim(fields[0]).empty() && error.empty()) continue;
    have_header = true;
    break;
  }
  if (in.bad()) return Unavailable("reading the ACLED file failed");
  if (!have_header) return InvalidArgument("empty file: no header row");
  if (!error.empty()) return InvalidArgument("header row (line " + std::to_string(line) + "): " + error);
  Header header;
  AMPARO_RETURN_IF_ERROR(header.Read(fields, options.max_columns));

  AcledSummary summary;
  const bool has_event_columns = header.Has("event_type") || header.Has("latitude") || header.Has("longitude");
  summary.kind = has_event_columns ? AcledFileKind::kEvents : AcledFileKind::kDeletions;
  std::vector<const char*> required = {"event_id_cnty", "timestamp"};
  if (summary.kind == AcledFileKind::kEvents) {
    for (const char* c : {"event_date", "event_type", "iso", "latitude", "longitude"}) required.push_back(c);
  }
  for (const char* column : required) {
    if (!header.Has(column)) {
      return InvalidArgument(std::string("required column is missing from the header (") +
                                 (summary.kind == AcledFileKind::kEvents ? "events" : "deletions") + " file)",
                             column);
    }
  }

  while (reader.Next(&fields, &line, &error)) {
    if (fields.size() == 1 && Trim(fields[0]).empty() && error.empty()) continue;
    ++summary.rows;
    RowRejection rejection{.line = line, .column = {}, .reason = {}, .event_id_cnty = header.Get(fields, "event_id_cnty")};
    std::optional<RowProblem> problem;
    v1::CrisisEvent event;
    if (!error.empty()) {
      problem = RowProblem{"", error};
    } else if (fields.size() != header.width()) {
      problem = RowProblem{"", "has " + std::to_string(fields.size()) + " fields, the header has " +
                                   std::to_string(header.width())};
    } else if (summary.kind == AcledFileKind::kEvents) {
      problem = ReadEventRow(header, fields, options, &event, &summary.warnings, line);
    } else {
      problem = ReadDeletionRow(header, fields, options, &event);
    }
    if (problem) {
      rejection.column = std::move(problem->column);
      rejection.reason = std::move(problem->reason);
      ++summary.rejections;
      on_rejection(std::move(rejection));
    } else {
      ++summary.events;
      on_event(std::move(event));
    }
  }
  if (in.bad()) return Unavailable("reading the ACLED file failed after line " + std::to_string(line));
  return summary;
}

namespace {

// Reads a string_view in place (no copy of a file that may be tens of MB).
class ViewStreamBuf : public std::streambuf {
 public:
  explicit ViewStreamBuf(std::string_view text) {
    char* begin = const_cast<char*>(text.data());  // never written: get area only
    setg(begin, begin, begin + text.size());
  }
};

}  // namespace

Result<ParsedFeed> ParseAcledFeed(std::string_view bytes, const FeedContext& context) {
  AcledParseOptions options;
  options.status = ApplyExercise(v1::EVENT_STATUS_ACTUAL, context);
  options.received_ms = context.received_ms;
  Result<ParsedAcled> acled = ParseAcledCsv(bytes, options);
  if (!acled.ok()) return acled.status();
  ParsedFeed feed;
  feed.format = "acled-csv";
  feed.feature_count = static_cast<int>(acled->summary.rows);
  feed.events = std::move(acled->events);
  for (RowRejection& r : acled->rejections) {
    feed.rejections.push_back({.index = static_cast<int>(r.line),
                               .id = std::move(r.event_id_cnty),
                               .field = "line " + std::to_string(r.line) + (r.column.empty() ? "" : " " + r.column),
                               .reason = std::move(r.reason)});
  }
  for (std::string& w : acled->summary.warnings) feed.warnings.push_back({"acled-unknown-iso", std::move(w)});
  return feed;
}

Result<ParsedAcled> ParseAcledCsv(std::string_view text, const AcledParseOptions& options) {
  ViewStreamBuf buf(text);
  std::istream in(&buf);
  ParsedAcled parsed;
  Result<AcledSummary> summary = ParseAcledCsvStream(
      in, options, [&](v1::CrisisEvent e) { parsed.events.push_back(std::move(e)); },
      [&](RowRejection r) { parsed.rejections.push_back(std::move(r)); });
  if (!summary.ok()) return summary.status();
  parsed.summary = std::move(*summary);
  return parsed;
}

}  // namespace amparo::ingest
