// bench/import: bulk import of registrants from CSV through the gateway's
// ImportRegistrants (the path of `amparo import` and POST
// /api/v1/registrants:import: validation, gazetteer lookup, encryption of
// the personal data, a RegistryChange per row for amparo-rules (256 per
// message), audit), against `sqlite3 .import` of the same file into an
// untyped table without indexes, in the same run. Prints one table. Not part of ctest.
//
//   bench-import [--rows N] [--batch ROWS] [--commit ROWS] [--seed S] [--dir DIR] [--keep]
//                [--no-sqlite]
//
// The CSV (export's columns, realistic values: names, e-mails, E.164
// phones, real cities from the bundled gazetteer with jittered lat/lon,
// household members, languages, vulnerability flags, consent) is generated
// deterministically for a seed into a temp dir (or DIR) and streamed from
// disk: the import must not hold the file in memory, so the peak RSS the
// import adds is printed next to the file size.
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/db.h"
#include "common/gazetteer.h"
#include "common/status.h"
#include "services/gateway/gateway_store.h"
#include "services/gateway/import_export.h"
#include "services/gateway/registry_keys.h"

namespace {

namespace fs = std::filesystem;
using amparo::Gazetteer;
using amparo::Place;
using amparo::Result;
using amparo::Status;
using Steady = std::chrono::steady_clock;

double Seconds(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

// CPU seconds (user + system) of every thread of this process so far: the
// wall time is meaningless on a loaded machine, CPU time much less so.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

// CPU seconds of the calling thread alone. ImportRegistrants writes on the
// calling thread and reads, validates and seals on one other thread, so the
// process's CPU minus this is the reader's.
double ThreadCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + t.tv_nsec / 1e9;
}

// CPU seconds of finished children (the sqlite3 CLI).
double ChildCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_CHILDREN, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

// ---------- deterministic data ----------

// splitmix64: tiny, fast and identical everywhere (std distributions are
// not specified bit-for-bit across standard libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return Next() % n; }
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  bool Chance(double p) { return Unit() < p; }
  template <typename T, size_t N>
  const T& Pick(const T (&items)[N]) {
    return items[Below(N)];
  }

 private:
  uint64_t state_;
};

// The registering state is PHL: one token, one state, as in a real import.
constexpr const char* kFirstNames[] = {"Maria",    "Jose",      "Ana",     "Juan", "Rosario", "Mark",
                                       "Kristine", "Ramon",     "Liza",    "Joel", "Marites", "Arnel",
                                       "Grace",    "Ferdinand", "Jocelyn", "Rodel"};
constexpr const char* kLastNames[] = {"Santos",   "Reyes",     "Cruz",       "Bautista", "Garcia",
                                      "Mendoza",  "Dela Cruz", "Villanueva", "Ramos",    "Aquino",
                                      "Castillo", "Flores",    "Navarro",    "Torres",   "Domingo"};
constexpr const char* kLanguages[][2] = {{"fil", "en"}, {"fil", ""},    {"ceb", "fil"},
                                         {"en", "fil"}, {"ilo", "fil"}, {"fil", "ar"}};

struct Host {
  const char* iso3;
  const char* dial;  // E.164 country code
  double weight;     // share of the registrants (rough, not statistics)
};

constexpr Host kHosts[] = {{"SAU", "966", 20}, {"ARE", "971", 18}, {"USA", "1", 14},  {"JPN", "81", 8},
                           {"KWT", "965", 7},  {"QAT", "974", 7},  {"HKG", "852", 6}, {"SGP", "65", 5},
                           {"ITA", "39", 4},   {"CAN", "1", 4},    {"GBR", "44", 3},  {"KOR", "82", 2},
                           {"ESP", "34", 2}};

constexpr const char* kVulnerabilities[] = {"child",        "older_person",       "disability",
                                            "pregnancy",    "medical_need",       "isolated_domestic_worker",
                                            "in_detention", "unaccompanied_child"};
constexpr const char* kMemberBands[] = {"0-4", "5-17", "5-17", "18-59", "18-59", "60+"};
constexpr const char* kMailDomains[] = {"gmail.com", "yahoo.com", "outlook.com", "example.ph"};

struct HostCities {
  const Host* host;
  std::vector<Place> cities;  // the most populous, with cumulative population weights
  std::vector<double> cumulative;
};

void AppendCell(std::string& line, std::string_view value) {
  if (value.find_first_of(",\"\r\n") == std::string_view::npos) {
    line += value;
    return;
  }
  line += '"';
  for (char c : value) {
    if (c == '"') line += '"';
    line += c;
  }
  line += '"';
}

void AppendDigits(std::string& s, Rng& rng, int n) {
  for (int i = 0; i < n; ++i) s += static_cast<char>('0' + rng.Below(10));
}

std::string MailLocal(std::string_view first, std::string_view last, uint64_t n) {
  std::string s;
  for (std::string_view part : {first, std::string_view("."), last}) {
    for (char c : part) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != ' ') s += c;
    }
  }
  return s + std::to_string(n);
}

std::string Fixed(double v, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Writes the export header and `rows` rows to `path`, streaming. Returns
// the file size.
Result<int64_t> WriteCsv(const fs::path& path, int64_t rows, uint64_t seed, const Gazetteer& gazetteer) {
  std::vector<HostCities> hosts;
  double total_weight = 0;
  for (const Host& h : kHosts) {
    HostCities hc{&h, gazetteer.InCountry(h.iso3), {}};
    if (hc.cities.empty()) continue;  // a gazetteer without that country: skip it
    if (hc.cities.size() > 60) hc.cities.resize(60);
    double sum = 0;
    for (const Place& p : hc.cities) hc.cumulative.push_back(sum += static_cast<double>(p.population));
    hosts.push_back(std::move(hc));
    total_weight += h.weight;
  }
  if (hosts.empty())
    return Status(amparo::StatusCode::kFailedPrecondition, "the gazetteer has no host country");

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return amparo::Unavailable("cannot write " + path.string());
  const auto& columns = amparo::gateway::RegistryCsvColumns();
  std::string line;
  for (size_t i = 0; i < columns.size(); ++i) line += (i ? "," : "") + columns[i];
  line += "\r\n";
  out << line;

  Rng rng(seed);
  for (int64_t n = 1; n <= rows; ++n) {
    double w = rng.Unit() * total_weight;
    const HostCities* hc = &hosts.back();
    for (const auto& h : hosts) {
      if ((w -= h.host->weight) < 0) {
        hc = &h;
        break;
      }
    }
    double c = rng.Unit() * hc->cumulative.back();
    size_t city = 0;
    while (city + 1 < hc->cities.size() && hc->cumulative[city] < c) ++city;
    const Place& place = hc->cities[city];
    const std::string first = rng.Pick(kFirstNames), last = rng.Pick(kLastNames);
    const bool with_place = rng.Chance(0.7);
    const int members = rng.Chance(0.55) ? 0 : static_cast<int>(1 + rng.Below(4));

    line.clear();
    auto cell = [&](std::string_view v) {
      AppendCell(line, v);
      line += ',';
    };
    cell("");     // id: assigned by the gateway
    cell("PHL");  // state: ignored on import (the token's state)
    cell("PHL-" + std::to_string(n * 7919 % 100'000'007) + "-" + std::to_string(n));
    cell(first + " " + last);
    cell(hc->host->iso3);
    cell(Fixed(place.lat + (rng.Unit() - 0.5) * 0.2, 5));
    cell(Fixed(place.lon + (rng.Unit() - 0.5) * 0.2, 5));
    cell(std::to_string(50 + rng.Below(20) * 50));
    cell(with_place ? place.name : "");
    cell(with_place ? hc->host->iso3 : "");
    cell("");  // admin1: derived from the place
    cell(std::to_string(1 + members + (rng.Chance(0.1) ? 1 : 0)));
    std::string household;
    for (int m = 0; m < members; ++m) {
      if (m) household += ';';
      household += rng.Pick(kMemberBands);
      household += rng.Chance(0.15) ? std::string(":") + hc->host->iso3 : std::string(":PHL");
    }
    cell(household);
    const auto& langs = rng.Pick(kLanguages);
    cell(std::string(langs[0]) + (*langs[1] ? std::string(";") + langs[1] : std::string()));
    cell(rng.Chance(0.8) ? MailLocal(first, last, n) + "@" + rng.Pick(kMailDomains) : "");
    std::string phone = std::string("+") + hc->host->dial;
    AppendDigits(phone, rng, 9);
    cell(phone);
    const bool emergency = rng.Chance(0.6);
    cell(emergency ? std::string(rng.Pick(kFirstNames)) + " " + last : "");
    std::string emergency_phone = "+639";
    AppendDigits(emergency_phone, rng, 9);
    cell(emergency ? emergency_phone : "");
    cell(emergency && rng.Chance(0.3) ? MailLocal(last, "family", n) + "@gmail.com" : "");
    cell(std::to_string(2026 + rng.Below(10)) + "-" + (rng.Chance(0.5) ? "03" : "11") + "-" +
         std::to_string(10 + rng.Below(18)));
    std::string flags;
    if (rng.Chance(0.25)) flags = rng.Pick(kVulnerabilities);
    if (!flags.empty() && rng.Chance(0.2)) {
      const char* second = rng.Pick(kVulnerabilities);
      if (flags != second) flags += std::string(";") + second;
    }
    cell(flags);
    const bool consented = rng.Chance(0.9);
    cell(consented ? "true" : "");
    cell(consented ? (rng.Chance(0.6) ? "true" : "false") : "");
    cell(consented ? (rng.Chance(0.3) ? "true" : "false") : "");
    cell(consented ? "2024-0" + std::to_string(1 + rng.Below(9)) + "-1" + std::to_string(rng.Below(10)) +
                         "T09:30:00Z"
                   : "");
    cell(consented ? "notice-2024-01" : "");
    cell("");        // created_at
    cell("");        // updated_at
    line += "\r\n";  // retention_until: default
    out << line;
  }
  out.flush();
  if (!out) return amparo::Unavailable("writing " + path.string() + " failed");
  return static_cast<int64_t>(fs::file_size(path));
}

// ---------- measurement ----------

// kB from /proc/self/status ("VmRSS", "VmHWM").
int64_t ProcStatusKb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t len = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, len, key) == 0 && line.size() > len && line[len] == ':') {
      return std::atoll(line.c_str() + len + 1);
    }
  }
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0), so the peak measured
// after is the import's own.
void ResetPeakRss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
}

int64_t FileSizeOrZero(const fs::path& p) {
  std::error_code ec;
  auto size = fs::file_size(p, ec);
  return ec ? 0 : static_cast<int64_t>(size);
}

struct Args {
  int64_t rows = 1'000'000;
  int batch = 0;       // 0: ImportOptions' default
  int64_t commit = 0;  // 0: ImportOptions' default
  uint64_t seed = 1;
  std::string dir;
  bool keep = false;
  bool sqlite = true;
};

bool ParseArgs(int argc, char** argv, Args* a) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (arg == "--rows" && (v = value())) {
      a->rows = std::atoll(v);
    } else if (arg == "--batch" && (v = value())) {
      a->batch = std::atoi(v);
    } else if (arg == "--commit" && (v = value())) {
      a->commit = std::atoll(v);
    } else if (arg == "--seed" && (v = value())) {
      a->seed = std::strtoull(v, nullptr, 10);
    } else if (arg == "--dir" && (v = value())) {
      a->dir = v;
    } else if (arg == "--keep") {
      a->keep = true;
    } else if (arg == "--no-sqlite") {
      a->sqlite = false;
    } else {
      std::fprintf(
          stderr,
          "usage: bench-import [--rows N] [--batch ROWS] [--commit ROWS] [--seed S] [--dir DIR] [--keep] "
          "[--no-sqlite]\n");
      return false;
    }
  }
  return a->rows > 0;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

int Run(const Args& args) {
  fs::path dir;
  if (args.dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "amparo-bench-import-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
  } else {
    dir = args.dir;
    fs::create_directories(dir);
  }
  const fs::path csv = dir / "registrants.csv";
  const fs::path db_path = dir / "gateway.db";
  const fs::path plain_db = dir / "sqlite-import.db";
  for (const auto& p : {db_path, plain_db}) {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(p.string() + suffix);
  }

  auto gazetteer = Gazetteer::Load(Gazetteer::DefaultPath());
  if (!gazetteer.ok()) {
    std::fprintf(stderr, "bench-import: %s\n", gazetteer.status().ToString().c_str());
    return 1;
  }
  auto t0 = Steady::now();
  auto csv_bytes = WriteCsv(csv, args.rows, args.seed, **gazetteer);
  if (!csv_bytes.ok()) {
    std::fprintf(stderr, "bench-import: %s\n", csv_bytes.status().ToString().c_str());
    return 1;
  }
  const double generate_s = Seconds(Steady::now() - t0);

  auto db = amparo::Db::Open(db_path);
  if (!db.ok() || !amparo::gateway::MigrateGatewayDb(*db).ok()) {
    std::fprintf(stderr, "bench-import: cannot open %s\n", db_path.c_str());
    return 1;
  }
  const auto keys = amparo::gateway::RegistryKeys::FromBytes(std::string(32, '\x2a'));
  const amparo::gateway::Token token{"bench-token", "PHL", amparo::gateway::Role::kRegistrar};
  amparo::gateway::ImportOptions options;
  options.gazetteer = gazetteer->get();
  options.source = csv.filename().string();
  if (args.batch > 0) options.batch_rows = args.batch;
  if (args.commit > 0) options.commit_rows = args.commit;
  int64_t peak_rss_kb = 0;
  options.progress = [&](int64_t) { peak_rss_kb = std::max(peak_rss_kb, ProcStatusKb("VmRSS")); };

  std::ifstream in(csv, std::ios::binary);
  double load_before[3] = {0, 0, 0};
  getloadavg(load_before, 3);
  const int64_t rss_before_kb = ProcStatusKb("VmRSS");
  ResetPeakRss();
  double cpu0 = CpuSeconds();
  const double writer_cpu0 = ThreadCpuSeconds();
  t0 = Steady::now();
  auto report = amparo::gateway::ImportRegistrants(*db, token, in, amparo::gateway::RegistryFormat::kCsv,
                                                   keys, amparo::SystemClock::Instance(), options);
  const double import_s = Seconds(Steady::now() - t0);
  const double import_cpu_s = CpuSeconds() - cpu0;
  const double writer_cpu_s = ThreadCpuSeconds() - writer_cpu0;
  peak_rss_kb = std::max(peak_rss_kb, ProcStatusKb("VmHWM"));
  if (!report.ok()) {
    std::fprintf(stderr, "bench-import: import failed: %s\n", report.status().ToString().c_str());
    return 1;
  }
  const int64_t db_bytes = FileSizeOrZero(db_path) + FileSizeOrZero(db_path.string() + "-wal");
  auto outbox = db->Prepare("SELECT count(*) FROM link_outbox");
  const int64_t messages = outbox.ok() && outbox->Step().ok() ? outbox->ColumnInt(0) : -1;

  double sqlite_s = 0, sqlite_cpu_s = 0;
  int sqlite_rc = -1;
  if (args.sqlite) {
    const std::string command = "sqlite3 " + ShellQuote(plain_db.string()) + " '.mode csv' " +
                                ShellQuote(".import " + csv.string() + " t");
    cpu0 = ChildCpuSeconds();
    t0 = Steady::now();
    sqlite_rc = std::system(command.c_str());
    sqlite_s = Seconds(Steady::now() - t0);
    sqlite_cpu_s = ChildCpuSeconds() - cpu0;
  }

  const double rows = static_cast<double>(args.rows);
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf("bench-import: %" PRId64 " CSV rows, %.1f MB, seed %" PRIu64 ", batch %d rows, commit %" PRId64
              " rows, load %.1f before / %.1f after (%d CPUs), dir %s\n",
              args.rows, *csv_bytes / 1e6, args.seed, options.batch_rows, options.commit_rows, load_before[0],
              load[0], static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)), dir.c_str());
  std::printf("  %-26s %8s %11s %8s %11s\n", "", "wall s", "rows/s", "cpu s", "rows/cpu-s");
  std::printf("  %-26s %8.2f\n", "generate CSV", generate_s);
  std::printf(
      "  %-26s %8.2f %11.0f %8.2f %11.0f   %" PRId64 " imported, %" PRId64 " rejected%s%s\n",
      "amparo ImportRegistrants", import_s, rows / import_s, import_cpu_s, rows / import_cpu_s,
      report->imported, report->rejected, report->errors.empty() ? "" : "; first: ",
      report->errors.empty() ? "" : (report->errors[0].field + ": " + report->errors[0].reason).c_str());
  std::printf("  %-26s %8s %11s %8.2f %11.0f   %.2f us of CPU per row (parse, validate, seal)\n",
              "  reader thread", "", "", import_cpu_s - writer_cpu_s, rows / (import_cpu_s - writer_cpu_s),
              (import_cpu_s - writer_cpu_s) * 1e6 / rows);
  std::printf("  %-26s %8s %11s %8.2f %11.0f   %.2f us of CPU per row (SQLite, audit)\n", "  writer thread",
              "", "", writer_cpu_s, rows / writer_cpu_s, writer_cpu_s * 1e6 / rows);
  if (args.sqlite) {
    if (sqlite_rc != 0) {
      std::printf("  sqlite3 .import failed (exit %d)\n", sqlite_rc);
    } else {
      std::printf("  %-26s %8.2f %11.0f %8.2f %11.0f   untyped table, no index, no validation\n",
                  "sqlite3 .import", sqlite_s, rows / sqlite_s, sqlite_cpu_s, rows / sqlite_cpu_s);
      std::printf("  %-26s %8.2f %11s %8.2f %11s   amparo / sqlite3 .import (time; < 1 = amparo faster)\n",
                  "ratio", import_s / sqlite_s, "", import_cpu_s / sqlite_cpu_s, "");
    }
  }
  std::printf("  %-26s %8.1f MB before the import, %.1f MB peak during it (CSV file %.1f MB)\n",
              "resident memory", rss_before_kb / 1024.0, peak_rss_kb / 1024.0, *csv_bytes / 1e6);
  std::printf("  %-26s %8.1f MB (%.0f bytes/row), %" PRId64 " messages to rules queued (up to 256 changes each)\n",
              "gateway db (+wal)", db_bytes / 1e6, db_bytes / rows, messages);
  std::printf("  %-26s %s (wall)\n", "goal >= 200000 rows/s", rows / import_s >= 200'000 ? "met" : "NOT met");
  if (!args.keep && args.dir.empty()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, &args)) return 2;
  return Run(args);
}
