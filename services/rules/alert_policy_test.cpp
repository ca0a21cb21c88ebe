#include "services/rules/alert_policy.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <sstream>

#include "common/crypto.h"
#include "common/testing.h"

namespace amparo::rules {
namespace {

constexpr int kUnaccompaniedChildBit = 0;  // VULNERABILITY_FLAG_UNACCOMPANIED_CHILD == 1 << 0
constexpr int kInDetentionBit = 6;         // VULNERABILITY_FLAG_IN_DETENTION == 1 << 6

PolicyInputs Exposed(uint32_t registrants) {
  PolicyInputs in;
  in.state = "NPL";
  in.host_country = "JPN";
  in.hazard = v1::HAZARD_KIND_EARTHQUAKE;
  in.registrants = registrants;
  in.household_members = registrants * 2;
  return in;
}

PolicyInputs WithPager(std::string pager, uint32_t registrants = 3) {
  PolicyInputs in = Exposed(registrants);
  in.pager_alert = std::move(pager);
  return in;
}

PolicyInputs WithChild(PolicyInputs in) {
  in.vulnerable += 1;
  in.with_flag[kUnaccompaniedChildBit] += 1;
  return in;
}

std::shared_ptr<const AlertPolicy> MustParse(const std::string& text) {
  auto p = AlertPolicy::Parse(text, "p.toml");
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? *p : nullptr;
}

// The error message of parsing `text` as "p.toml" ("" when it parsed).
std::string ErrorOf(const std::string& text) {
  auto p = AlertPolicy::Parse(text, "p.toml");
  if (p.ok()) return "";
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  return p.status().message();
}

// A [default] section whose first rule has `rule_body`, then a catch-all.
std::string WithRule(const std::string& rule_body) {
  return "[default]\n[[default.rule]]\nname = \"first\"\n" + rule_body +
         "\n[[default.rule]]\nname = \"all\"\nlevel = \"info\"\n";
}

// A minimal valid [default] section plus `extra`.
std::string Minimal(const std::string& extra = "") {
  return "[default]\n[[default.rule]]\nname = \"all\"\nlevel = \"info\"\n" + extra;
}

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// --- The built-in policy -----------------------------------------------------

TEST(AlertPolicyDefaultTest, IsTheDeployFileByteForByte) {
  const std::string file = ReadFile(std::filesystem::path(AMPARO_SOURCE_DIR) / "deploy" / "policy.toml");
  ASSERT_FALSE(file.empty());
  EXPECT_EQ(AlertPolicy::DefaultText(), file);
  EXPECT_EQ(AlertPolicy::Default()->fingerprint(), "builtin:" + Sha256Hex(file));
  auto loaded = AlertPolicy::Load(std::filesystem::path(AMPARO_SOURCE_DIR) / "deploy" / "policy.toml");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->fingerprint(), Sha256Hex(file));
  EXPECT_EQ((*loaded)->fingerprint().size(), 64u);
}

TEST(AlertPolicyDefaultTest, NobodyExposedIsInfoWithoutPhase) {
  PolicyDecision d = AlertPolicy::Default()->Evaluate(WithPager("red", 0));
  EXPECT_EQ(d.level, v1::ALERT_LEVEL_INFO);
  EXPECT_EQ(d.proposed_phase, v1::CRISIS_PHASE_UNSPECIFIED);
  EXPECT_EQ(d.rule, "default:nobody-exposed");
  EXPECT_EQ(d.source_level, "red");
  EXPECT_EQ(d.repeat_interval_ms, 6 * 3600 * 1000);
}

TEST(AlertPolicyDefaultTest, RulesFollowTheSourceLevel) {
  const auto policy = AlertPolicy::Default();
  struct Case {
    PolicyInputs in;
    v1::AlertLevel level;
    v1::CrisisPhase phase;
    std::string rule;
  };
  PolicyInputs conflict = Exposed(2);
  conflict.hazard = v1::HAZARD_KIND_CONFLICT;
  conflict.fatalities = 12;
  PolicyInputs ungraded = Exposed(2);
  const Case cases[] = {
      {WithPager("red", 60), v1::ALERT_LEVEL_CRITICAL, v1::CRISIS_PHASE_RELOCATION,
       "default:red-source-many-exposed"},
      {WithPager("red", 49), v1::ALERT_LEVEL_CRITICAL, v1::CRISIS_PHASE_RESTRICTION, "default:red-source"},
      {conflict, v1::ALERT_LEVEL_CRITICAL, v1::CRISIS_PHASE_RESTRICTION, "default:orange-conflict"},
      {WithPager("orange"), v1::ALERT_LEVEL_WARNING, v1::CRISIS_PHASE_PRECAUTIONARY, "default:orange-source"},
      {WithPager("yellow"), v1::ALERT_LEVEL_WARNING, v1::CRISIS_PHASE_UNSPECIFIED, "default:yellow-source"},
      {WithPager("green"), v1::ALERT_LEVEL_INFO, v1::CRISIS_PHASE_UNSPECIFIED, "default:exposed"},
      {ungraded, v1::ALERT_LEVEL_INFO, v1::CRISIS_PHASE_UNSPECIFIED, "default:exposed"},
  };
  for (const Case& c : cases) {
    PolicyDecision d = policy->Evaluate(c.in);
    EXPECT_EQ(d.level, c.level) << c.rule;
    EXPECT_EQ(d.proposed_phase, c.phase) << c.rule;
    EXPECT_EQ(d.rule, c.rule);
  }
}

TEST(AlertPolicyDefaultTest, AnExposedUnaccompaniedChildRaisesTheLevelOneStep) {
  const auto policy = AlertPolicy::Default();
  // green: info -> warning; yellow: warning -> critical.
  PolicyDecision without = policy->Evaluate(WithPager("green"));
  PolicyDecision with = policy->Evaluate(WithChild(WithPager("green")));
  EXPECT_EQ(without.level, v1::ALERT_LEVEL_INFO);
  EXPECT_EQ(with.level, v1::ALERT_LEVEL_WARNING);
  EXPECT_EQ(with.rule, "default:exposed+unaccompanied-child");
  EXPECT_NE(with.explanation.find(
                "escalated by unaccompanied-child (1 exposed unaccompanied_child), info -> warning"),
            std::string::npos)
      << with.explanation;

  without = policy->Evaluate(WithPager("yellow"));
  with = policy->Evaluate(WithChild(WithPager("yellow")));
  EXPECT_EQ(without.level, v1::ALERT_LEVEL_WARNING);
  EXPECT_EQ(with.level, v1::ALERT_LEVEL_CRITICAL);
  EXPECT_EQ(with.proposed_phase, without.proposed_phase);

  // Already critical: stays critical, and the rule shows the escalation.
  without = policy->Evaluate(WithPager("red"));
  with = policy->Evaluate(WithChild(WithPager("red")));
  EXPECT_EQ(without.level, v1::ALERT_LEVEL_CRITICAL);
  EXPECT_EQ(with.level, v1::ALERT_LEVEL_CRITICAL);
  EXPECT_EQ(without.rule, "default:red-source");
  EXPECT_EQ(with.rule, "default:red-source+unaccompanied-child");
  EXPECT_NE(with.explanation.find("already critical"), std::string::npos) << with.explanation;
}

TEST(AlertPolicyDefaultTest, EscalationsStackInFileOrder) {
  PolicyInputs in = WithChild(WithPager("yellow"));
  in.vulnerable += 1;
  in.with_flag[kInDetentionBit] = 1;
  PolicyDecision d = AlertPolicy::Default()->Evaluate(in);
  EXPECT_EQ(d.level, v1::ALERT_LEVEL_CRITICAL);
  EXPECT_EQ(d.rule, "default:yellow-source+unaccompanied-child+in-detention");
  // Detention escalates only when the source expects damage (yellow+).
  in.pager_alert = "green";
  d = AlertPolicy::Default()->Evaluate(in);
  EXPECT_EQ(d.rule, "default:exposed+unaccompanied-child");
  EXPECT_EQ(d.level, v1::ALERT_LEVEL_WARNING);
}

TEST(AlertPolicyDefaultTest, EvaluationIsDeterministic) {
  PolicyInputs in = WithChild(WithPager("orange", 7));
  in.gdacs_alert = "red";
  PolicyDecision a = AlertPolicy::Default()->Evaluate(in);
  PolicyDecision b = AlertPolicy::Default()->Evaluate(in);
  EXPECT_EQ(a.level, b.level);
  EXPECT_EQ(a.proposed_phase, b.proposed_phase);
  EXPECT_EQ(a.rule, b.rule);
  EXPECT_EQ(a.explanation, b.explanation);
  EXPECT_EQ(
      a.explanation,
      "Rule red-source matched: source level red (GDACS red, PAGER orange), 7 registrants (14 people, 1 "
      "vulnerable) exposed; level critical, phase 2; escalated by unaccompanied-child (1 exposed "
      "unaccompanied_child), already critical.");
}

// --- The normalised source level ------------------------------------------

TEST(AlertPolicySourceLevelTest, FollowsTheDocumentedTable) {
  const auto policy = AlertPolicy::Default();
  auto level = [&](auto set) {
    PolicyInputs in = Exposed(1);
    set(in);
    return policy->Evaluate(in).source_level;
  };
  EXPECT_EQ(level([](PolicyInputs&) {}), "none");
  EXPECT_EQ(level([](PolicyInputs& in) { in.gdacs_alert = "Orange"; }), "orange");
  EXPECT_EQ(level([](PolicyInputs& in) { in.gdacs_alert = "purple"; }), "none");
  EXPECT_EQ(level([](PolicyInputs& in) { in.pager_alert = "yellow"; }), "yellow");
  EXPECT_EQ(level([](PolicyInputs& in) { in.severity = v1::SEVERITY_EXTREME; }), "red");
  EXPECT_EQ(level([](PolicyInputs& in) { in.severity = v1::SEVERITY_SEVERE; }), "orange");
  EXPECT_EQ(level([](PolicyInputs& in) { in.severity = v1::SEVERITY_MODERATE; }), "yellow");
  EXPECT_EQ(level([](PolicyInputs& in) { in.severity = v1::SEVERITY_MINOR; }), "green");
  EXPECT_EQ(level([](PolicyInputs& in) { in.severity = v1::SEVERITY_UNKNOWN; }), "none");
  EXPECT_EQ(level([](PolicyInputs& in) {
              in.severity = v1::SEVERITY_EXTREME;
              in.certainty = v1::CERTAINTY_UNLIKELY;
            }),
            "orange");
  EXPECT_EQ(level([](PolicyInputs& in) {
              in.severity = v1::SEVERITY_MINOR;
              in.certainty = v1::CERTAINTY_UNLIKELY;
            }),
            "green");
  EXPECT_EQ(level([](PolicyInputs& in) { in.fatalities = 0; }), "green");
  EXPECT_EQ(level([](PolicyInputs& in) { in.fatalities = 1; }), "yellow");
  EXPECT_EQ(level([](PolicyInputs& in) { in.fatalities = 9; }), "yellow");
  EXPECT_EQ(level([](PolicyInputs& in) { in.fatalities = 10; }), "orange");
  EXPECT_EQ(level([](PolicyInputs& in) { in.fatalities = 50; }), "red");
  // The highest of several sources wins.
  EXPECT_EQ(level([](PolicyInputs& in) {
              in.gdacs_alert = "green";
              in.pager_alert = "orange";
              in.severity = v1::SEVERITY_MODERATE;
            }),
            "orange");
}

TEST(AlertPolicySourceLevelTest, FatalityThresholdsComeFromTheFile) {
  auto policy =
      MustParse(Minimal("[default.fatalities]\nyellow = 5\norange = 20\nred = 100\n"
                        "[state.SYR.fatalities]\nyellow = 0\norange = 1\nred = 2\n"));
  ASSERT_TRUE(policy);
  PolicyInputs in = Exposed(1);
  in.fatalities = 4;
  EXPECT_EQ(policy->Evaluate(in).source_level, "green");
  in.fatalities = 20;
  EXPECT_EQ(policy->Evaluate(in).source_level, "orange");
  in.state = "SYR";
  in.fatalities = 2;
  EXPECT_EQ(policy->Evaluate(in).source_level, "red");
}

// --- Conditions, sections, escalations ------------------------------------

TEST(AlertPolicyTest, EveryConditionMustHold) {
  auto policy = MustParse(WithRule(R"(level = "critical"
phase = 4
source_level = "orange"
hazards = ["tropical_cyclone", "flood"]
host_countries = ["PHL"]
min_registrants = 2
min_household_members = 5
min_vulnerable = 1
urgency = ["immediate"]
certainty = ["observed", "likely"]
flag = "older_person"
min_exposed = 1)"));
  ASSERT_TRUE(policy);
  PolicyInputs in;
  in.state = "IDN";
  in.host_country = "PHL";
  in.hazard = v1::HAZARD_KIND_TROPICAL_CYCLONE;
  in.gdacs_alert = "orange";
  in.registrants = 2;
  in.household_members = 5;
  in.vulnerable = 1;
  in.urgency = v1::URGENCY_IMMEDIATE;
  in.certainty = v1::CERTAINTY_LIKELY;
  in.with_flag[2] = 1;  // VULNERABILITY_FLAG_OLDER_PERSON == 1 << 2
  PolicyDecision d = policy->Evaluate(in);
  EXPECT_EQ(d.rule, "default:first");
  EXPECT_EQ(d.level, v1::ALERT_LEVEL_CRITICAL);
  EXPECT_EQ(d.proposed_phase, v1::CRISIS_PHASE_EVACUATION);

  // Break one condition at a time: the catch-all takes over.
  std::vector<std::function<void(PolicyInputs&)>> breakers = {
      [](PolicyInputs& i) { i.gdacs_alert = "green"; },
      [](PolicyInputs& i) { i.hazard = v1::HAZARD_KIND_EARTHQUAKE; },
      [](PolicyInputs& i) { i.host_country = "VNM"; },
      [](PolicyInputs& i) { i.registrants = 1; },
      [](PolicyInputs& i) { i.household_members = 4; },
      [](PolicyInputs& i) { i.vulnerable = 0; },
      [](PolicyInputs& i) { i.urgency = v1::URGENCY_EXPECTED; },
      [](PolicyInputs& i) { i.certainty = v1::CERTAINTY_POSSIBLE; },
      [](PolicyInputs& i) { i.with_flag[2] = 0; },
  };
  for (size_t b = 0; b < breakers.size(); ++b) {
    PolicyInputs broken = in;
    breakers[b](broken);
    EXPECT_EQ(policy->Evaluate(broken).rule, "default:all") << "breaker " << b;
  }
}

TEST(AlertPolicyTest, StateSectionsReplaceOnlyWhatTheyGive) {
  auto policy = MustParse(Minimal(R"(
[[default.escalate]]
name = "child"
flag = "unaccompanied_child"

[state.PHL]
repeat_interval = "30m"
[[state.PHL.rule]]
name = "exposed"
level = "warning"

[state.MEX]
escalate = []
)"));
  ASSERT_TRUE(policy);
  PolicyInputs in = WithChild(Exposed(1));
  in.state = "PHL";
  PolicyDecision d = policy->Evaluate(in);
  EXPECT_EQ(d.rule, "PHL:exposed+child");  // PHL's rules, the default's escalations
  EXPECT_EQ(d.level, v1::ALERT_LEVEL_CRITICAL);
  EXPECT_EQ(d.repeat_interval_ms, 30 * 60 * 1000);

  in.state = "MEX";
  d = policy->Evaluate(in);
  EXPECT_EQ(d.rule, "default:all");  // MEX has no escalations
  EXPECT_EQ(d.level, v1::ALERT_LEVEL_INFO);
  EXPECT_EQ(d.repeat_interval_ms, 6 * 3600 * 1000);

  in.state = "NPL";
  d = policy->Evaluate(in);
  EXPECT_EQ(d.rule, "default:all+child");
  EXPECT_EQ(d.level, v1::ALERT_LEVEL_WARNING);

  in.state = "PHL";
  in.registrants = 0;
  EXPECT_EQ(policy->Evaluate(in).rule, "PHL:nobody-exposed");
}

TEST(AlertPolicyTest, EscalationsRaisePhaseAndCapAtFour) {
  auto policy = MustParse(WithRule(R"(level = "warning"
phase = 3
source_level = "red")") + R"(
[[default.escalate]]
name = "phase-up"
min_vulnerable = 1
steps = 0
phase_steps = 2
)");
  ASSERT_TRUE(policy);
  PolicyInputs in = WithPager("red");
  in.vulnerable = 1;
  PolicyDecision d = policy->Evaluate(in);
  EXPECT_EQ(d.rule, "default:first+phase-up");
  EXPECT_EQ(d.level, v1::ALERT_LEVEL_WARNING);
  EXPECT_EQ(d.proposed_phase, v1::CRISIS_PHASE_EVACUATION);
  in.pager_alert = "green";  // the catch-all proposes no phase: none -> 2
  d = policy->Evaluate(in);
  EXPECT_EQ(d.proposed_phase, v1::CRISIS_PHASE_RESTRICTION);
  EXPECT_NE(d.explanation.find("phase none -> 2"), std::string::npos) << d.explanation;
}

TEST(AlertPolicyTest, DurationsAndDefaults) {
  auto repeat = [](const std::string& value) {
    auto p = MustParse("[default]\nrepeat_interval = \"" + value +
                       "\"\n[[default.rule]]\nname = \"a\"\nlevel = \"info\"\n");
    return p ? p->Evaluate(Exposed(1)).repeat_interval_ms : -1;
  };
  EXPECT_EQ(repeat("0"), 0);
  EXPECT_EQ(repeat("90s"), 90'000);
  EXPECT_EQ(repeat("30m"), 1'800'000);
  EXPECT_EQ(repeat("6h"), 21'600'000);
  EXPECT_EQ(repeat("30d"), int64_t{30} * 86'400'000);
  // Unset: 6 hours.
  EXPECT_EQ(MustParse(Minimal())->Evaluate(Exposed(1)).repeat_interval_ms, 21'600'000);
}

TEST(AlertPolicyTest, FingerprintIsTheTextsSha256) {
  const std::string text = Minimal();
  EXPECT_EQ(MustParse(text)->fingerprint(), Sha256Hex(text));
  EXPECT_NE(MustParse(text + "# comment\n")->fingerprint(), Sha256Hex(text));
}

// --- Validation: every error names the file, the key and the reason --------

TEST(AlertPolicyValidationTest, UnknownKeys) {
  EXPECT_EQ(ErrorOf(Minimal("[defaults]\n")), "p.toml: defaults: unknown key");
  EXPECT_EQ(ErrorOf(Minimal("[state.PHL]\nrepeat = \"1h\"\n")), "p.toml: state.PHL.repeat: unknown key");
  EXPECT_EQ(ErrorOf(WithRule("level = \"info\"\nlevle = \"info\"")),
            "p.toml: default.rule[0].levle: unknown key");
  EXPECT_EQ(ErrorOf(Minimal("[[default.escalate]]\nname = \"e\"\nflag = \"child\"\nlevel = \"critical\"\n")),
            "p.toml: default.escalate[0].level: unknown key");
  EXPECT_EQ(ErrorOf(Minimal("[default.fatalities]\nblack = 3\n")),
            "p.toml: default.fatalities.black: unknown key");
}

TEST(AlertPolicyValidationTest, WrongTypes) {
  EXPECT_EQ(ErrorOf(WithRule("level = \"info\"\nmin_registrants = \"3\"")),
            "p.toml: default.rule[0].min_registrants: must be an integer");
  EXPECT_EQ(ErrorOf(WithRule("level = 3")),
            "p.toml: default.rule[0].level: must be info, warning or critical");
  EXPECT_EQ(ErrorOf(WithRule("level = \"info\"\nhazards = \"earthquake\"")),
            "p.toml: default.rule[0].hazards: must be an array of strings");
  EXPECT_EQ(ErrorOf(WithRule("level = \"info\"\nhazards = [1]")),
            "p.toml: default.rule[0].hazards[0]: must be a string");
  EXPECT_EQ(ErrorOf("[default]\n[[default.rule]]\nname = 7\nlevel = \"info\"\n"),
            "p.toml: default.rule[0].name: must be a string");
  EXPECT_EQ(ErrorOf("[default]\nrule = { name = \"a\", level = \"info\" }\n"),
            "p.toml: default.rule: must be an array of tables ([[default.rule]])");
  EXPECT_EQ(ErrorOf("default = 3\n"), "p.toml: default: must be a table");
  EXPECT_EQ(ErrorOf(Minimal("[default.fatalities]\nyellow = 1.5\n")),
            "p.toml: default.fatalities.yellow: must be an integer");
  EXPECT_EQ(ErrorOf("[default]\nrepeat_interval = 6\n[[default.rule]]\nname = \"a\"\nlevel = \"info\"\n"),
            "p.toml: default.repeat_interval: must be a string such as \"6h\"");
}

TEST(AlertPolicyValidationTest, BadLevelsAndSourceLevels) {
  EXPECT_EQ(ErrorOf(WithRule("level = \"urgent\"")),
            "p.toml: default.rule[0].level: must be info, warning or critical");
  EXPECT_EQ(ErrorOf(WithRule("level = \"info\"\nsource_level = \"amber\"")),
            "p.toml: default.rule[0].source_level: must be green, yellow, orange or red");
  EXPECT_EQ(ErrorOf(WithRule("level = \"info\"\nsource_level = \"RED\"")),
            "p.toml: default.rule[0].source_level: must be green, yellow, orange or red");
  EXPECT_EQ(ErrorOf(WithRule("phase = 2")), "p.toml: default.rule[0].level: is required");
  // The header's example, in a state section.
  EXPECT_EQ(
      ErrorOf(Minimal("[[state.PHL.rule]]\nname = \"a\"\nlevel = \"info\"\n[[state.PHL.rule]]\nname = \"b\"\n"
                      "level = \"info\"\n[[state.PHL.rule]]\nname = \"c\"\nlevel = \"severe\"\n")),
      "p.toml: state.PHL.rule[2].level: must be info, warning or critical");
}

TEST(AlertPolicyValidationTest, PhaseOutOfRange) {
  EXPECT_EQ(ErrorOf(WithRule("level = \"info\"\nphase = 0")),
            "p.toml: default.rule[0].phase: must be between 1 and 4");
  EXPECT_EQ(ErrorOf(WithRule("level = \"info\"\nphase = 5")),
            "p.toml: default.rule[0].phase: must be between 1 and 4");
  EXPECT_EQ(ErrorOf(Minimal("[[default.escalate]]\nname = \"e\"\nphase_steps = 4\n")),
            "p.toml: default.escalate[0].phase_steps: must be between 0 and 3");
  EXPECT_EQ(ErrorOf(Minimal("[[default.escalate]]\nname = \"e\"\nsteps = 3\n")),
            "p.toml: default.escalate[0].steps: must be between 0 and 2");
  EXPECT_EQ(ErrorOf(Minimal("[[default.escalate]]\nname = \"e\"\nsteps = 0\n")),
            "p.toml: default.escalate[0]: raises nothing: steps and phase_steps are both 0");
}

TEST(AlertPolicyValidationTest, UnknownFlagsHazardsAndEnumValues) {
  const std::string flag_error = ErrorOf(Minimal("[[default.escalate]]\nname = \"e\"\nflag = \"orphan\"\n"));
  EXPECT_EQ(flag_error.rfind("p.toml: default.escalate[0].flag: unknown flag \"orphan\" (known: ", 0), 0u)
      << flag_error;
  EXPECT_NE(flag_error.find("unaccompanied_child"), std::string::npos);
  EXPECT_EQ(flag_error.find("none"), std::string::npos);  // the zero value is not a flag
  EXPECT_EQ(ErrorOf(Minimal("[[default.escalate]]\nname = \"e\"\nmin_exposed = 2\n")),
            "p.toml: default.escalate[0].min_exposed: needs `flag` (whose exposed people it counts)");
  const std::string hazard_error =
      ErrorOf(WithRule("level = \"info\"\nhazards = [\"earthquake\", \"meteor\"]"));
  EXPECT_EQ(hazard_error.rfind("p.toml: default.rule[0].hazards[1]: unknown value \"meteor\" (known: ", 0),
            0u)
      << hazard_error;
  EXPECT_NE(hazard_error.find("tropical_cyclone"), std::string::npos);
  EXPECT_EQ(
      ErrorOf(WithRule("level = \"info\"\nurgency = [\"now\"]"))
          .rfind(
              "p.toml: default.rule[0].urgency[0]: unknown value \"now\" (known: expected, future, immediate",
              0),
      0u);
  EXPECT_EQ(ErrorOf(WithRule("level = \"info\"\ncertainty = []")),
            "p.toml: default.rule[0].certainty: must not be empty (leave it out to match any)");
  EXPECT_EQ(ErrorOf(WithRule("level = \"info\"\nhost_countries = [\"phl\"]")),
            "p.toml: default.rule[0].host_countries[0]: must be an ISO 3166-1 alpha-3 code in upper case, "
            "e.g. \"PHL\"");
}

TEST(AlertPolicyValidationTest, UnknownStates) {
  const std::string reason = ": unknown state: must be an ISO 3166-1 alpha-3 code in upper case, e.g. PHL";
  EXPECT_EQ(ErrorOf(Minimal("[state.Phl]\n")), "p.toml: state.Phl" + reason);
  EXPECT_EQ(ErrorOf(Minimal("[state.PH]\n")), "p.toml: state.PH" + reason);
  EXPECT_EQ(ErrorOf(Minimal("[state.PHLX]\n")), "p.toml: state.PHLX" + reason);
  EXPECT_EQ(ErrorOf("state = 3\n" + Minimal()), "p.toml: state: must be a table of [state.XXX] sections");
}

TEST(AlertPolicyValidationTest, DuplicateNames) {
  EXPECT_EQ(
      ErrorOf("[default]\n[[default.rule]]\nname = \"a\"\nlevel = \"info\"\n[[default.rule]]\nname = \"a\"\n"
              "level = \"info\"\n"),
      "p.toml: default.rule[1].name: duplicate name \"a\" in this section");
  EXPECT_EQ(ErrorOf(Minimal("[[default.escalate]]\nname = \"all\"\nflag = \"child\"\n")),
            "p.toml: default.escalate[0].name: duplicate name \"all\" in this section");
  // A key given twice in one table is a TOML syntax error.
  EXPECT_NE(ErrorOf(WithRule("name = \"x\"")).find("TOML syntax error"), std::string::npos);
  EXPECT_EQ(ErrorOf(Minimal("[[default.escalate]]\nname = \"Big One\"\nflag = \"child\"\n")),
            "p.toml: default.escalate[0].name: must be 1..64 characters of a-z, 0-9, '-' and '_'");
  EXPECT_EQ(ErrorOf(Minimal("[[default.escalate]]\nflag = \"child\"\n")),
            "p.toml: default.escalate[0].name: is required");
}

TEST(AlertPolicyValidationTest, UnparsableDurations) {
  const std::string reason =
      ": must be a duration like \"30m\", \"6h\" or \"1d\" (1m..30d), or \"0\" for never";
  for (const char* bad : {"6 hours", "6", "h", "-1h", "10s", "31d", "1w", ""}) {
    EXPECT_EQ(ErrorOf("[default]\nrepeat_interval = \"" + std::string(bad) +
                      "\"\n[[default.rule]]\nname = \"a\"\nlevel = \"info\"\n"),
              "p.toml: default.repeat_interval" + reason)
        << bad;
  }
  EXPECT_EQ(ErrorOf(Minimal("[state.PHL]\nrepeat_interval = \"1y\"\n")),
            "p.toml: state.PHL.repeat_interval" + reason);
}

TEST(AlertPolicyValidationTest, TheLastRuleMustBeACatchAll) {
  EXPECT_EQ(
      ErrorOf("[default]\n[[default.rule]]\nname = \"a\"\nlevel = \"info\"\n[[default.rule]]\nname = \"b\"\n"
              "level = \"info\"\nmin_registrants = 1\n"),
      "p.toml: default.rule[1]: the last rule must have no conditions (a catch-all), so that every exposure "
      "gets a level");
  EXPECT_EQ(ErrorOf(Minimal("[[state.PHL.rule]]\nname = \"a\"\nlevel = \"info\"\nsource_level = \"red\"\n")),
            "p.toml: state.PHL.rule[0]: the last rule must have no conditions (a catch-all), so that every "
            "exposure gets a level");
  EXPECT_EQ(ErrorOf("[default]\nrule = []\n"), "p.toml: default.rule: must hold at least one rule");
  EXPECT_EQ(ErrorOf("[default]\nrepeat_interval = \"1h\"\n"),
            "p.toml: default.rule: is required: at least one [[default.rule]]");
  EXPECT_EQ(ErrorOf("[state.PHL]\n"),
            "p.toml: default: is required: a [default] section with its [[default.rule]] list");
}

TEST(AlertPolicyValidationTest, FatalityThresholdsMustIncrease) {
  EXPECT_EQ(ErrorOf(Minimal("[default.fatalities]\nyellow = 10\norange = 10\nred = 50\n")),
            "p.toml: default.fatalities.orange: must be greater than yellow");
  EXPECT_EQ(ErrorOf(Minimal("[default.fatalities]\nred = 5\n")),
            "p.toml: default.fatalities.red: must be greater than orange");
  EXPECT_EQ(ErrorOf(Minimal("[default.fatalities]\nyellow = -1\n")),
            "p.toml: default.fatalities.yellow: must be between 0 and 1000000000");
}

TEST(AlertPolicyValidationTest, SyntaxErrorsAndMissingFilesNameTheFile) {
  const std::string syntax = ErrorOf(Minimal("[[default.rule]\n"));
  EXPECT_EQ(syntax.rfind("p.toml:5:", 0), 0u) << syntax;
  EXPECT_NE(syntax.find("TOML syntax error"), std::string::npos);

  testing::TempDir dir;
  auto missing = AlertPolicy::Load(dir.path() / "nope.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(missing.status().message(),
            (dir.path() / "nope.toml").string() +
                ": cannot read the policy file: it does not exist or is not a file");

  std::ofstream(dir.path() / "bad.toml") << WithRule("level = \"urgent\"");
  auto bad = AlertPolicy::Load(dir.path() / "bad.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), (dir.path() / "bad.toml").string() +
                                        ": default.rule[0].level: must be info, warning or critical");
}

}  // namespace
}  // namespace amparo::rules
