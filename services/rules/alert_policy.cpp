#include "services/rules/alert_policy.h"

#include <google/protobuf/descriptor.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "amparo/v1/registry.pb.h"
#include "common/crypto.h"

namespace amparo::rules {

namespace internal {
// deploy/policy.toml, compiled in by CMake (alert_policy_data.cpp.in).
extern const std::string_view kDefaultPolicyToml;
}  // namespace internal

namespace {

// Normalised source level; kNone when no source graded the event.
enum SourceLevel : int { kNone = 0, kGreen, kYellow, kOrange, kRed };

constexpr std::string_view kSourceLevelNames[] = {"none", "green", "yellow", "orange", "red"};

constexpr int64_t kMinute = 60'000;
constexpr int64_t kMaxRepeatMs = 30 * 24 * 60 * kMinute;
constexpr int64_t kDefaultRepeatMs = 6 * 60 * kMinute;
constexpr int64_t kMaxCount = 1'000'000'000;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::optional<SourceLevel> ParseSourceLevel(std::string_view s) {
  std::string l = Lower(s);
  for (int i = kGreen; i <= kRed; ++i) {
    if (l == kSourceLevelNames[i]) return static_cast<SourceLevel>(i);
  }
  return std::nullopt;
}

// Names of an enum's values the way the policy file writes them: lower case
// without the enum's prefix ("HAZARD_KIND_TROPICAL_CYCLONE" ->
// "tropical_cyclone"), skipping the zero value. Taken from the proto so a
// value added there is accepted here without a second list to update.
std::map<std::string, int> EnumNames(const google::protobuf::EnumDescriptor* d, std::string_view prefix) {
  std::map<std::string, int> names;
  for (int i = 0; i < d->value_count(); ++i) {
    const auto* v = d->value(i);
    if (v->number() == 0) continue;
    std::string_view name = v->name();
    if (name.substr(0, prefix.size()) == prefix) name.remove_prefix(prefix.size());
    names.emplace(Lower(name), v->number());
  }
  return names;
}

const std::map<std::string, int>& HazardNames() {
  static const auto* names =
      new std::map<std::string, int>(EnumNames(v1::HazardKind_descriptor(), "HAZARD_KIND_"));
  return *names;
}
const std::map<std::string, int>& UrgencyNames() {
  static const auto* names = new std::map<std::string, int>(EnumNames(v1::Urgency_descriptor(), "URGENCY_"));
  return *names;
}
const std::map<std::string, int>& CertaintyNames() {
  static const auto* names =
      new std::map<std::string, int>(EnumNames(v1::Certainty_descriptor(), "CERTAINTY_"));
  return *names;
}
const std::map<std::string, int>& FlagNames() {
  static const auto* names =
      new std::map<std::string, int>(EnumNames(v1::VulnerabilityFlag_descriptor(), "VULNERABILITY_FLAG_"));
  return *names;
}

std::string Join(const std::map<std::string, int>& names) {
  std::string out;
  for (const auto& [name, value] : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string NameOf(const std::map<std::string, int>& names, int value) {
  for (const auto& [name, v] : names) {
    if (v == value) return name;
  }
  return std::to_string(value);
}

bool IsIso3(std::string_view s) {
  return s.size() == 3 && std::all_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

std::string_view LevelName(v1::AlertLevel level) {
  switch (level) {
    case v1::ALERT_LEVEL_INFO:
      return "info";
    case v1::ALERT_LEVEL_WARNING:
      return "warning";
    case v1::ALERT_LEVEL_CRITICAL:
      return "critical";
    default:
      return "unspecified";
  }
}

// "30m", "6h", "1d", "90s"; "0" (any unit) = never. Nullopt when malformed
// or out of 1m..30d.
std::optional<int64_t> ParseDuration(std::string_view s) {
  if (s == "0") return 0;
  if (s.size() < 2 || s.size() > 12) return std::nullopt;
  std::string_view digits = s.substr(0, s.size() - 1);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  int64_t n = std::strtoll(std::string(digits).c_str(), nullptr, 10);
  int64_t unit_ms = 0;
  switch (s.back()) {
    case 's':
      unit_ms = 1000;
      break;
    case 'm':
      unit_ms = kMinute;
      break;
    case 'h':
      unit_ms = 60 * kMinute;
      break;
    case 'd':
      unit_ms = 24 * 60 * kMinute;
      break;
    default:
      return std::nullopt;
  }
  if (n == 0) return 0;
  if (n > kMaxRepeatMs / unit_ms) return std::nullopt;
  int64_t ms = n * unit_ms;
  if (ms < kMinute) return std::nullopt;
  return ms;
}

// ---------------------------------------------------------------------------
// The parsed policy.

struct Condition {
  SourceLevel min_source_level = kNone;  // kNone: any (including ungraded events)
  std::vector<int> hazards;              // empty: any
  std::vector<std::string> host_countries;
  uint32_t min_registrants = 0;
  uint32_t min_household_members = 0;
  uint32_t min_vulnerable = 0;
  std::vector<int> urgency;
  std::vector<int> certainty;
  int flag_bit = -1;  // -1: no flag condition
  uint32_t min_exposed = 1;

  bool Unconditional() const {
    return min_source_level == kNone && hazards.empty() && host_countries.empty() && min_registrants == 0 &&
           min_household_members == 0 && min_vulnerable == 0 && urgency.empty() && certainty.empty() &&
           flag_bit < 0;
  }
};

struct Rule {
  std::string name;
  Condition when;
  v1::AlertLevel level = v1::ALERT_LEVEL_UNSPECIFIED;
  int phase = 0;  // 0: none proposed
};

struct Escalation {
  std::string name;
  Condition when;
  int steps = 1;
  int phase_steps = 0;
};

struct FatalityThresholds {
  int64_t yellow = 1;
  int64_t orange = 10;
  int64_t red = 50;
};

// One [default] or [state.XXX] section; a state's unset parts come from the
// default.
struct Section {
  std::optional<int64_t> repeat_interval_ms;
  std::optional<FatalityThresholds> fatalities;
  std::optional<std::vector<Rule>> rules;
  std::optional<std::vector<Escalation>> escalations;
};

// ---------------------------------------------------------------------------
// Parsing and validation: every error names the source, the key path and the
// reason.

class PolicyParser {
 public:
  explicit PolicyParser(std::string_view source) : source_(source) {}

  Status Error(const std::string& key, const std::string& reason) const {
    return InvalidArgument(source_ + ": " + key + ": " + reason);
  }

  Status CheckKeys(const toml::table& t, const std::string& prefix,
                   const std::set<std::string_view>& known) const {
    for (const auto& [k, v] : t) {
      if (!known.count(k.str())) return Error(Path(prefix, k.str()), "unknown key");
    }
    return Status::Ok();
  }

  Status ParseSection(const toml::table& t, const std::string& prefix, bool is_default, Section* out) const {
    AMPARO_RETURN_IF_ERROR(CheckKeys(t, prefix, {"repeat_interval", "fatalities", "rule", "escalate"}));
    if (const toml::node* n = t.get("repeat_interval")) {
      const std::string key = Path(prefix, "repeat_interval");
      if (!n->is_string()) return Error(key, "must be a string such as \"6h\"");
      auto ms = ParseDuration(*n->value<std::string>());
      if (!ms)
        return Error(key, "must be a duration like \"30m\", \"6h\" or \"1d\" (1m..30d), or \"0\" for never");
      out->repeat_interval_ms = *ms;
    } else if (is_default) {
      out->repeat_interval_ms = kDefaultRepeatMs;
    }
    if (const toml::node* n = t.get("fatalities")) {
      FatalityThresholds f;
      AMPARO_RETURN_IF_ERROR(ParseFatalities(*n, Path(prefix, "fatalities"), &f));
      out->fatalities = f;
    } else if (is_default) {
      out->fatalities = FatalityThresholds{};
    }
    std::set<std::string> names;
    if (const toml::node* n = t.get("rule")) {
      std::vector<Rule> rules;
      AMPARO_RETURN_IF_ERROR(ParseRules(*n, Path(prefix, "rule"), &names, &rules));
      out->rules = std::move(rules);
    } else if (is_default) {
      return Error(Path(prefix, "rule"), "is required: at least one [[" + Path(prefix, "rule") + "]]");
    }
    if (const toml::node* n = t.get("escalate")) {
      std::vector<Escalation> escalations;
      AMPARO_RETURN_IF_ERROR(ParseEscalations(*n, Path(prefix, "escalate"), &names, &escalations));
      out->escalations = std::move(escalations);
    } else if (is_default) {
      out->escalations.emplace();
    }
    return Status::Ok();
  }

 private:
  static std::string Path(const std::string& prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
  }
  static std::string Index(const std::string& key, size_t i) { return key + "[" + std::to_string(i) + "]"; }

  Status Int(const toml::table& t, const std::string& prefix, std::string_view k, int64_t lo, int64_t hi,
             int64_t* out) const {
    const toml::node* n = t.get(k);
    if (!n) return Status::Ok();
    if (!n->is_integer()) return Error(Path(prefix, k), "must be an integer");
    int64_t v = *n->value<int64_t>();
    if (v < lo || v > hi) {
      return Error(Path(prefix, k), "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    }
    *out = v;
    return Status::Ok();
  }

  Status Count(const toml::table& t, const std::string& prefix, std::string_view k, uint32_t* out) const {
    int64_t v = *out;
    AMPARO_RETURN_IF_ERROR(Int(t, prefix, k, 0, kMaxCount, &v));
    *out = static_cast<uint32_t>(v);
    return Status::Ok();
  }

  // A non-empty array of strings, each one of `names` (or, with names null,
  // an upper-case ISO3 code).
  Status NameList(const toml::table& t, const std::string& prefix, std::string_view k,
                  const std::map<std::string, int>* names, std::vector<int>* values,
                  std::vector<std::string>* codes) const {
    const toml::node* n = t.get(k);
    if (!n) return Status::Ok();
    const std::string key = Path(prefix, k);
    const toml::array* arr = n->as_array();
    if (!arr) return Error(key, "must be an array of strings");
    if (arr->empty()) return Error(key, "must not be empty (leave it out to match any)");
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& item = (*arr)[i];
      if (!item.is_string()) return Error(Index(key, i), "must be a string");
      std::string s = *item.value<std::string>();
      if (names) {
        auto it = names->find(s);
        if (it == names->end())
          return Error(Index(key, i), "unknown value \"" + s + "\" (known: " + Join(*names) + ")");
        values->push_back(it->second);
      } else {
        if (!IsIso3(s))
          return Error(Index(key, i), "must be an ISO 3166-1 alpha-3 code in upper case, e.g. \"PHL\"");
        codes->push_back(s);
      }
    }
    return Status::Ok();
  }

  Status ParseCondition(const toml::table& t, const std::string& prefix, Condition* c) const {
    if (const toml::node* n = t.get("source_level")) {
      const std::string key = Path(prefix, "source_level");
      std::optional<SourceLevel> level;
      if (n->is_string() && Lower(*n->value<std::string>()) == *n->value<std::string>()) {
        level = ParseSourceLevel(*n->value<std::string>());
      }
      if (!level) return Error(key, "must be green, yellow, orange or red");
      c->min_source_level = *level;
    }
    AMPARO_RETURN_IF_ERROR(NameList(t, prefix, "hazards", &HazardNames(), &c->hazards, nullptr));
    AMPARO_RETURN_IF_ERROR(NameList(t, prefix, "host_countries", nullptr, nullptr, &c->host_countries));
    AMPARO_RETURN_IF_ERROR(Count(t, prefix, "min_registrants", &c->min_registrants));
    AMPARO_RETURN_IF_ERROR(Count(t, prefix, "min_household_members", &c->min_household_members));
    AMPARO_RETURN_IF_ERROR(Count(t, prefix, "min_vulnerable", &c->min_vulnerable));
    AMPARO_RETURN_IF_ERROR(NameList(t, prefix, "urgency", &UrgencyNames(), &c->urgency, nullptr));
    AMPARO_RETURN_IF_ERROR(NameList(t, prefix, "certainty", &CertaintyNames(), &c->certainty, nullptr));
    if (const toml::node* n = t.get("flag")) {
      const std::string key = Path(prefix, "flag");
      if (!n->is_string()) return Error(key, "must be a string");
      std::string s = *n->value<std::string>();
      auto it = FlagNames().find(s);
      if (it == FlagNames().end())
        return Error(key, "unknown flag \"" + s + "\" (known: " + Join(FlagNames()) + ")");
      int bit = 0;
      while ((1u << bit) != static_cast<uint32_t>(it->second)) ++bit;
      c->flag_bit = bit;
    }
    if (t.get("min_exposed")) {
      if (c->flag_bit < 0)
        return Error(Path(prefix, "min_exposed"), "needs `flag` (whose exposed people it counts)");
      int64_t v = c->min_exposed;
      AMPARO_RETURN_IF_ERROR(Int(t, prefix, "min_exposed", 1, kMaxCount, &v));
      c->min_exposed = static_cast<uint32_t>(v);
    }
    return Status::Ok();
  }

  Status Name(const toml::table& t, const std::string& prefix, std::set<std::string>* names,
              std::string* out) const {
    const std::string key = Path(prefix, "name");
    const toml::node* n = t.get("name");
    if (!n) return Error(key, "is required");
    if (!n->is_string()) return Error(key, "must be a string");
    std::string s = *n->value<std::string>();
    bool ok = !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char ch) {
      return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
    });
    if (!ok) return Error(key, "must be 1..64 characters of a-z, 0-9, '-' and '_'");
    if (!names->insert(s).second) return Error(key, "duplicate name \"" + s + "\" in this section");
    *out = std::move(s);
    return Status::Ok();
  }

  const toml::array* TableArray(const toml::node& n, const std::string& key, Status* st) const {
    const toml::array* arr = n.as_array();
    if (!arr || !arr->is_array_of_tables()) {
      *st = Error(key, "must be an array of tables ([[" + key + "]])");
      return nullptr;
    }
    return arr;
  }

  static constexpr std::string_view kConditionKeys[] = {"source_level",
                                                        "hazards",
                                                        "host_countries",
                                                        "min_registrants",
                                                        "min_household_members",
                                                        "min_vulnerable",
                                                        "urgency",
                                                        "certainty",
                                                        "flag",
                                                        "min_exposed"};

  Status ParseRules(const toml::node& n, const std::string& key, std::set<std::string>* names,
                    std::vector<Rule>* rules) const {
    Status st;
    const toml::array* arr = TableArray(n, key, &st);
    if (!arr) return n.as_array() && n.as_array()->empty() ? Error(key, "must hold at least one rule") : st;
    if (arr->empty()) return Error(key, "must hold at least one rule");
    std::set<std::string_view> known = {"name", "level", "phase"};
    known.insert(std::begin(kConditionKeys), std::end(kConditionKeys));
    for (size_t i = 0; i < arr->size(); ++i) {
      const std::string prefix = Index(key, i);
      const toml::table& t = *(*arr)[i].as_table();
      AMPARO_RETURN_IF_ERROR(CheckKeys(t, prefix, known));
      Rule r;
      AMPARO_RETURN_IF_ERROR(Name(t, prefix, names, &r.name));
      const toml::node* level = t.get("level");
      if (!level) return Error(Path(prefix, "level"), "is required");
      std::string l = level->is_string() ? *level->value<std::string>() : "";
      if (l == "info")
        r.level = v1::ALERT_LEVEL_INFO;
      else if (l == "warning")
        r.level = v1::ALERT_LEVEL_WARNING;
      else if (l == "critical")
        r.level = v1::ALERT_LEVEL_CRITICAL;
      else
        return Error(Path(prefix, "level"), "must be info, warning or critical");
      int64_t phase = 0;
      AMPARO_RETURN_IF_ERROR(Int(t, prefix, "phase", 1, 4, &phase));
      r.phase = static_cast<int>(phase);
      AMPARO_RETURN_IF_ERROR(ParseCondition(t, prefix, &r.when));
      rules->push_back(std::move(r));
    }
    if (!rules->back().when.Unconditional()) {
      return Error(
          Index(key, rules->size() - 1),
          "the last rule must have no conditions (a catch-all), so that every exposure gets a level");
    }
    return Status::Ok();
  }

  Status ParseEscalations(const toml::node& n, const std::string& key, std::set<std::string>* names,
                          std::vector<Escalation>* escalations) const {
    if (n.as_array() && n.as_array()->empty()) return Status::Ok();  // `escalate = []`: none
    Status st;
    const toml::array* arr = TableArray(n, key, &st);
    if (!arr) return st;
    std::set<std::string_view> known = {"name", "steps", "phase_steps"};
    known.insert(std::begin(kConditionKeys), std::end(kConditionKeys));
    for (size_t i = 0; i < arr->size(); ++i) {
      const std::string prefix = Index(key, i);
      const toml::table& t = *(*arr)[i].as_table();
      AMPARO_RETURN_IF_ERROR(CheckKeys(t, prefix, known));
      Escalation e;
      AMPARO_RETURN_IF_ERROR(Name(t, prefix, names, &e.name));
      int64_t steps = e.steps, phase_steps = e.phase_steps;
      AMPARO_RETURN_IF_ERROR(Int(t, prefix, "steps", 0, 2, &steps));
      AMPARO_RETURN_IF_ERROR(Int(t, prefix, "phase_steps", 0, 3, &phase_steps));
      if (steps == 0 && phase_steps == 0)
        return Error(prefix, "raises nothing: steps and phase_steps are both 0");
      e.steps = static_cast<int>(steps);
      e.phase_steps = static_cast<int>(phase_steps);
      AMPARO_RETURN_IF_ERROR(ParseCondition(t, prefix, &e.when));
      escalations->push_back(std::move(e));
    }
    return Status::Ok();
  }

  Status ParseFatalities(const toml::node& n, const std::string& key, FatalityThresholds* f) const {
    const toml::table* t = n.as_table();
    if (!t) return Error(key, "must be a table with yellow, orange and red");
    AMPARO_RETURN_IF_ERROR(CheckKeys(*t, key, {"yellow", "orange", "red"}));
    AMPARO_RETURN_IF_ERROR(Int(*t, key, "yellow", 0, kMaxCount, &f->yellow));
    AMPARO_RETURN_IF_ERROR(Int(*t, key, "orange", 0, kMaxCount, &f->orange));
    AMPARO_RETURN_IF_ERROR(Int(*t, key, "red", 0, kMaxCount, &f->red));
    if (f->orange <= f->yellow) return Error(Path(key, "orange"), "must be greater than yellow");
    if (f->red <= f->orange) return Error(Path(key, "red"), "must be greater than orange");
    return Status::Ok();
  }

  std::string source_;
};

// ---------------------------------------------------------------------------
// Evaluation.

struct GradedSource {
  SourceLevel level = kNone;
  std::string because;  // "PAGER red, ACLED 12 fatalities"
};

void Consider(GradedSource* g, SourceLevel level, const std::string& what) {
  if (level == kNone) return;
  g->level = std::max(g->level, level);
  if (!g->because.empty()) g->because += ", ";
  g->because += what;
}

GradedSource GradeSource(const PolicyInputs& in, const FatalityThresholds& f) {
  GradedSource g;
  if (in.gdacs_alert) {
    if (auto l = ParseSourceLevel(*in.gdacs_alert)) Consider(&g, *l, "GDACS " + Lower(*in.gdacs_alert));
  }
  if (in.pager_alert) {
    if (auto l = ParseSourceLevel(*in.pager_alert)) Consider(&g, *l, "PAGER " + Lower(*in.pager_alert));
  }
  SourceLevel cap = kNone;
  std::string cap_name;
  switch (in.severity) {
    case v1::SEVERITY_EXTREME:
      cap = kRed;
      cap_name = "Extreme";
      break;
    case v1::SEVERITY_SEVERE:
      cap = kOrange;
      cap_name = "Severe";
      break;
    case v1::SEVERITY_MODERATE:
      cap = kYellow;
      cap_name = "Moderate";
      break;
    case v1::SEVERITY_MINOR:
      cap = kGreen;
      cap_name = "Minor";
      break;
    default:
      break;
  }
  // A source that itself thinks the event unlikely gets one step less, never
  // below green: it still was issued, so it still grades the event.
  if (cap != kNone && in.certainty == v1::CERTAINTY_UNLIKELY) {
    cap = std::max(kGreen, static_cast<SourceLevel>(cap - 1));
    cap_name += "/Unlikely";
  }
  Consider(&g, cap, "CAP " + cap_name);
  if (in.fatalities && *in.fatalities >= 0) {
    int64_t n = *in.fatalities;
    SourceLevel l = n >= f.red ? kRed : n >= f.orange ? kOrange : n >= f.yellow ? kYellow : kGreen;
    Consider(&g, l, "ACLED " + std::to_string(n) + " fatalities");
  }
  return g;
}

template <typename T>
bool Contains(const std::vector<T>& v, const T& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

bool Holds(const Condition& c, const PolicyInputs& in, SourceLevel source) {
  if (c.min_source_level != kNone && source < c.min_source_level) return false;
  if (!c.hazards.empty() && !Contains(c.hazards, static_cast<int>(in.hazard))) return false;
  if (!c.host_countries.empty() && !Contains(c.host_countries, in.host_country)) return false;
  if (in.registrants < c.min_registrants) return false;
  if (in.household_members < c.min_household_members) return false;
  if (in.vulnerable < c.min_vulnerable) return false;
  if (!c.urgency.empty() && !Contains(c.urgency, static_cast<int>(in.urgency))) return false;
  if (!c.certainty.empty() && !Contains(c.certainty, static_cast<int>(in.certainty))) return false;
  if (c.flag_bit >= 0 && in.with_flag[c.flag_bit] < c.min_exposed) return false;
  return true;
}

// What made an escalation hold, for the explanation.
std::string EscalationCause(const Escalation& e, const PolicyInputs& in) {
  if (e.when.flag_bit >= 0) {
    return std::to_string(in.with_flag[e.when.flag_bit]) + " exposed " +
           NameOf(FlagNames(), 1 << e.when.flag_bit);
  }
  if (e.when.min_vulnerable > 0) return std::to_string(in.vulnerable) + " vulnerable exposed";
  return "its conditions hold";
}

}  // namespace

struct AlertPolicy::Impl {
  std::string fingerprint;
  std::string text;  // what it was parsed from
  Section defaults;
  std::map<std::string, Section, std::less<>> states;
};

AlertPolicy::AlertPolicy() : impl_(std::make_unique<Impl>()) {}
AlertPolicy::~AlertPolicy() = default;

const std::string& AlertPolicy::fingerprint() const { return impl_->fingerprint; }
const std::string& AlertPolicy::text() const { return impl_->text; }

std::string_view AlertPolicy::DefaultText() { return internal::kDefaultPolicyToml; }

std::shared_ptr<const AlertPolicy> AlertPolicy::Default() {
  static const std::shared_ptr<const AlertPolicy> policy = [] {
    auto parsed = ParseWithFingerprintPrefix(DefaultText(), "builtin:policy.toml", "builtin:");
    // deploy/policy.toml is compiled in and tested (alert_policy_test.cpp):
    // a broken one is a build defect, not a runtime condition.
    if (!parsed.ok()) std::abort();
    return *parsed;
  }();
  return policy;
}

Result<std::shared_ptr<const AlertPolicy>> AlertPolicy::Load(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    return InvalidArgument(file.string() +
                           ": cannot read the policy file: it does not exist or is not a file");
  }
  std::ifstream in(file, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  if (!in.good() && !in.eof()) return InvalidArgument(file.string() + ": cannot read the policy file");
  return Parse(buf.str(), file.string());
}

Result<std::shared_ptr<const AlertPolicy>> AlertPolicy::Parse(std::string_view toml_text,
                                                              std::string_view source_name) {
  return ParseWithFingerprintPrefix(toml_text, source_name, "");
}

Result<std::shared_ptr<const AlertPolicy>> AlertPolicy::ParseWithFingerprintPrefix(
    std::string_view toml_text, std::string_view source_name, std::string_view fingerprint_prefix) {
  const std::string source(source_name);
  toml::table root;
  try {
    root = toml::parse(toml_text, source);
  } catch (const toml::parse_error& err) {
    return InvalidArgument(source + ":" + std::to_string(err.source().begin.line) + ":" +
                           std::to_string(err.source().begin.column) +
                           ": TOML syntax error: " + std::string(err.description()));
  }
  PolicyParser parser(source);
  AMPARO_RETURN_IF_ERROR(parser.CheckKeys(root, "", {"default", "state"}));
  std::shared_ptr<AlertPolicy> policy(new AlertPolicy());
  policy->impl_->text = std::string(toml_text);
  const toml::node* defaults = root.get("default");
  if (!defaults)
    return parser.Error("default", "is required: a [default] section with its [[default.rule]] list");
  if (!defaults->is_table()) return parser.Error("default", "must be a table");
  AMPARO_RETURN_IF_ERROR(
      parser.ParseSection(*defaults->as_table(), "default", true, &policy->impl_->defaults));
  if (const toml::node* states = root.get("state")) {
    if (!states->is_table()) return parser.Error("state", "must be a table of [state.XXX] sections");
    for (const auto& [code, section] : *states->as_table()) {
      const std::string key = "state." + std::string(code.str());
      if (!IsIso3(code.str())) {
        return parser.Error(key, "unknown state: must be an ISO 3166-1 alpha-3 code in upper case, e.g. PHL");
      }
      if (!section.is_table()) return parser.Error(key, "must be a table");
      Section s;
      AMPARO_RETURN_IF_ERROR(parser.ParseSection(*section.as_table(), key, false, &s));
      policy->impl_->states.emplace(std::string(code.str()), std::move(s));
    }
  }
  policy->impl_->fingerprint = std::string(fingerprint_prefix) + Sha256Hex(toml_text);
  return std::shared_ptr<const AlertPolicy>(std::move(policy));
}

PolicyDecision AlertPolicy::Evaluate(const PolicyInputs& inputs) const {
  const Section& defaults = impl_->defaults;
  const Section* state = nullptr;
  if (auto it = impl_->states.find(inputs.state); it != impl_->states.end()) state = &it->second;
  // Each part from the state's section when it gives one, else the default.
  auto pick = [&](auto member) -> std::pair<const std::decay_t<decltype(*(defaults.*member))>&, std::string> {
    if (state && (state->*member)) return {*(state->*member), inputs.state};
    return {*(defaults.*member), "default"};
  };
  const auto [repeat_ms, repeat_section] = pick(&Section::repeat_interval_ms);
  const auto [fatalities, fatalities_section] = pick(&Section::fatalities);
  const auto [rules, rules_section] = pick(&Section::rules);
  const auto [escalations, escalations_section] = pick(&Section::escalations);

  PolicyDecision d;
  d.repeat_interval_ms = repeat_ms;
  GradedSource source = GradeSource(inputs, fatalities);
  d.source_level = std::string(kSourceLevelNames[source.level]);
  const std::string graded = source.level == kNone
                                 ? "no source level"
                                 : "source level " + d.source_level + " (" + source.because + ")";

  if (inputs.registrants == 0) {
    d.level = v1::ALERT_LEVEL_INFO;
    d.rule = (state ? inputs.state : std::string("default")) + ":nobody-exposed";
    d.explanation = "Nobody exposed; " + graded + ".";
    return d;
  }

  const Rule* matched = &rules.back();  // the validated catch-all
  for (const Rule& r : rules) {
    if (Holds(r.when, inputs, source.level)) {
      matched = &r;
      break;
    }
  }
  int level = matched->level;
  int phase = matched->phase;
  d.rule = rules_section + ":" + matched->name;
  std::ostringstream why;
  why << "Rule " << matched->name << " matched: " << graded << ", " << inputs.registrants << " registrants ("
      << inputs.household_members << " people, " << inputs.vulnerable << " vulnerable) exposed";
  why << "; level " << LevelName(static_cast<v1::AlertLevel>(level));
  if (phase > 0) why << ", phase " << phase;
  for (const Escalation& e : escalations) {
    if (!Holds(e.when, inputs, source.level)) continue;
    const int from_level = level, from_phase = phase;
    level = std::min<int>(v1::ALERT_LEVEL_CRITICAL, level + e.steps);
    if (e.phase_steps > 0) phase = std::min(4, phase + e.phase_steps);
    d.rule += "+" + e.name;
    why << "; escalated by " << e.name << " (" << EscalationCause(e, inputs) << ")";
    if (e.steps > 0) {
      if (level == from_level) {
        why << ", already " << LevelName(static_cast<v1::AlertLevel>(level));
      } else {
        why << ", " << LevelName(static_cast<v1::AlertLevel>(from_level)) << " -> "
            << LevelName(static_cast<v1::AlertLevel>(level));
      }
    }
    if (e.phase_steps > 0) {
      if (phase == from_phase) {
        why << ", phase already " << phase;
      } else {
        why << ", phase " << (from_phase == 0 ? std::string("none") : std::to_string(from_phase)) << " -> "
            << phase;
      }
    }
  }
  why << ".";
  d.level = static_cast<v1::AlertLevel>(level);
  d.proposed_phase = static_cast<v1::CrisisPhase>(phase);
  d.explanation = why.str();
  return d;
}

}  // namespace amparo::rules
