// AlertPolicy: how the level and the proposed consular crisis phase of an
// alert follow from what a source says about a crisis and who is exposed.
//
// One policy file (TOML, docs/alert-policy.md) holds a [default] policy and
// optional per-state sections that replace parts of it. amparo-rules loads it
// at start and again on SIGHUP; a file that does not validate in full is
// refused with a message naming the file, the key and the reason, and the
// policy in force stays.
//
// Evaluation is a pure function of PolicyInputs: no clock, no randomness,
// so recorded inputs always give the same decision (amparo replay
// --deterministic relies on it).
//
// Thread safety: an AlertPolicy is immutable after Parse(); share it as
// std::shared_ptr<const AlertPolicy>.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "amparo/v1/alert.pb.h"
#include "amparo/v1/crisis_event.pb.h"
#include "common/status.h"

namespace amparo::rules {

// Everything a decision may depend on, for one (incident, state, host).
struct PolicyInputs {
  std::string state;         // ISO3 of the exposed nationals' state
  std::string host_country;  // ISO3 ("" when unknown)
  v1::HazardKind hazard = v1::HAZARD_KIND_UNSPECIFIED;
  // The source's own levels, when it gives them.
  std::optional<std::string> gdacs_alert;  // "green" | "orange" | "red"
  std::optional<std::string> pager_alert;  // "green" | "yellow" | "orange" | "red"
  v1::Severity severity = v1::SEVERITY_UNSPECIFIED;
  v1::Urgency urgency = v1::URGENCY_UNSPECIFIED;
  v1::Certainty certainty = v1::CERTAINTY_UNSPECIFIED;
  std::optional<int64_t> fatalities;  // ACLED reported fatalities
  // Who is exposed.
  uint32_t registrants = 0;
  uint32_t household_members = 0;
  uint32_t vulnerable = 0;
  // with_flag[b]: exposed registrants whose vulnerability_flags has bit b
  // (v1::VulnerabilityFlag == 1 << b).
  std::array<uint32_t, 32> with_flag{};
};

struct PolicyDecision {
  v1::AlertLevel level = v1::ALERT_LEVEL_UNSPECIFIED;
  v1::CrisisPhase proposed_phase = v1::CRISIS_PHASE_UNSPECIFIED;
  // "<section>:<rule name>", e.g. "PHL:red-source" or "default:exposed";
  // escalations append "+<escalation name>" per step applied.
  std::string rule;
  // One sentence for operators: which inputs matched and what raised it.
  std::string explanation;
  // Re-notify an open alert whose revision has not changed after this long
  // (0 = never).
  int64_t repeat_interval_ms = 0;
  // The normalised source level the rules saw: "none" (no source graded the
  // event), "green", "yellow", "orange" or "red" (docs/alert-policy.md).
  std::string source_level;
};

class AlertPolicy {
 public:
  // The built-in policy (the same as deploy/policy.toml), used when
  // rules.policy_file is empty.
  static std::shared_ptr<const AlertPolicy> Default();
  // The text of the built-in policy: deploy/policy.toml, compiled in.
  static std::string_view DefaultText();
  // Reads and validates a whole file. Errors are INVALID_ARGUMENT naming the
  // file, the key path and the reason, e.g.
  //   "policy.toml: state.PHL.rule[2].level: must be info, warning or critical"
  static Result<std::shared_ptr<const AlertPolicy>> Load(const std::filesystem::path& file);
  // Same, from text; `source_name` stands for the file name in errors.
  static Result<std::shared_ptr<const AlertPolicy>> Parse(std::string_view toml_text,
                                                          std::string_view source_name);

  // The decision for `inputs` (nobody exposed: level INFO, no phase).
  PolicyDecision Evaluate(const PolicyInputs& inputs) const;

  // Hex SHA-256 of the policy text it was parsed from ("builtin:" + hash for
  // the default): recorded with every decision.
  const std::string& fingerprint() const;
  // The policy text it was parsed from (DefaultText() for Default()):
  // recorded in the rules decision log so replays re-parse the same policy.
  const std::string& text() const;

  ~AlertPolicy();

 private:
  AlertPolicy();
  // Parse(), with `fingerprint_prefix` before the hash ("builtin:" for Default()).
  static Result<std::shared_ptr<const AlertPolicy>> ParseWithFingerprintPrefix(
      std::string_view toml_text, std::string_view source_name, std::string_view fingerprint_prefix);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace amparo::rules
