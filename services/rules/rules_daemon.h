// RulesDaemon: amparo-rules as an embeddable object. Owns the rules database
// (config.DbPath("rules")), the RulesEngine, one LinkReceiver bound on
// config.rules.inbox (crisis events from ingest, registry changes from the
// gateway) and LinkSenders to notify (config.notify.inbox) and to the
// gateway (config.gateway.inbox: registry snapshot requests and probes,
// registry_sync.h), all driven by one single-threaded PollLoop. main() and
// in-process tests build it the same way.
//
// The alert policy (alert_policy.h) comes from config.rules.policy_file (the
// built-in one when empty). SIGHUP (common/daemon.h ConsumeReloadRequest(),
// checked every loop tick) re-reads it: a valid file replaces the policy in
// force, a bad one is logged with its reason and the old policy stays.
//
// Thread safety: every method runs on the thread that created it.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>

#include "common/clock.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/db.h"
#include "common/link.h"
#include "common/status.h"
#include "services/rules/alert_policy.h"
#include "services/rules/rules_engine.h"

namespace amparo::rules {

// The registry resynchronisation settings of the config ([rules] registry_*).
RegistrySyncOptions SyncOptionsFrom(const RulesOptions& options);

class RulesDaemon {
 public:
  // Loads the alert policy, creates config.data_dir if missing, opens and
  // migrates the database, loads the index, binds the inbox and connects to
  // notify. Errors: the policy's (INVALID_ARGUMENT naming the file, key and
  // reason), the database or link status (e.g. UNAVAILABLE when the inbox
  // cannot bind).
  // `ctx` and `clock` must outlive the daemon.
  // `sync_options` tune the registry resynchronisation (tests shorten it).
  static Result<std::unique_ptr<RulesDaemon>> Create(const Config& config, LinkContext& ctx,
                                                     const Clock& clock,
                                                     const RegistrySyncOptions& sync_options = {});
  ~RulesDaemon();
  RulesDaemon(const RulesDaemon&) = delete;
  RulesDaemon& operator=(const RulesDaemon&) = delete;

  // The policy config.rules.policy_file names, or AlertPolicy::Default() when
  // it is empty. main() calls it before Create() to refuse to start (exit 2)
  // on a bad file.
  static Result<std::shared_ptr<const AlertPolicy>> LoadPolicy(const Config& config);

  // Re-reads the policy file (what SIGHUP triggers). OK: the new policy is in
  // force, logged as "policy reloaded" with its fingerprint. Error (the file's
  // INVALID_ARGUMENT): the policy in force stays; the error is also logged.
  Status ReloadPolicy();

  // Polls until `stop` becomes true (checked at least every 200 ms).
  void Run(const std::atomic<bool>& stop);
  // One round of the loop, waiting at most `max_wait` for a socket.
  void PollOnce(std::chrono::milliseconds max_wait);

  const RulesEngine& engine() const { return *engine_; }
  // The policy in force (replaced by ReloadPolicy(); hold the shared_ptr to
  // keep one across a reload).
  const AlertPolicy& policy() const { return *policy_; }
  std::shared_ptr<const AlertPolicy> shared_policy() const { return policy_; }
  const LinkReceiver& receiver() const { return *receiver_; }
  LinkSender& sender() { return *sender_; }
  LinkSender& gateway_sender() { return *to_gateway_; }
  // The rules database (the daemon's thread only): for tests and status.
  Db& db() { return *db_; }

 private:
  RulesDaemon(const Config& config, const Clock& clock) : config_(config), clock_(clock) {}
  // Stores what arrived and processes the inbox, a bounded number of batches.
  void ProcessInbox();
  // Registry sync decisions (registry_sync.h), then pumps the gateway link.
  void SyncRegistry();
  // One transaction: RulesEngine::Tick (repeats, expiry, ended silences).
  void RunAlertTimers();

  Config config_;
  const Clock& clock_;
  std::unique_ptr<Db> db_;  // declared first: destroyed after everything using it
  std::unique_ptr<RulesEngine> engine_;
  std::shared_ptr<const AlertPolicy> policy_;
  std::unique_ptr<LinkReceiver> receiver_;
  std::unique_ptr<LinkSender> sender_;
  std::unique_ptr<LinkSender> to_gateway_;
  PollLoop loop_;
};

}  // namespace amparo::rules
