// Integration-test harness: a deployment in a temp dir, the real daemon
// binaries as child processes, a real HTTP webhook receiver on 127.0.0.1,
// and helpers to call the gateway over HTTP. Tests talk to the system only
// through its public interfaces (CLI, HTTP, spool directory, webhooks).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "common/testing.h"
#include "services/cli/http_client.h"

namespace amparo::integration {

std::filesystem::path BinDir();
std::filesystem::path SharedFixtures();

// Runs a program to completion; returns its stdout. Fails the test on a
// non-zero exit.
std::string RunTool(const std::vector<std::string>& argv);

// A child process with stdout+stderr appended to `log`.
class Process {
 public:
  Process(std::vector<std::string> argv, std::filesystem::path log);
  ~Process();
  void Start();
  void Kill9();
  // SIGTERM and wait; returns the exit status (or -signal).
  int Terminate();
  bool Running();
  pid_t pid() const { return pid_; }

 private:
  std::vector<std::string> argv_;
  std::filesystem::path log_;
  pid_t pid_ = -1;
};

struct Webhook {
  std::string target;                          // request path, e.g. "/phl"
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::chrono::steady_clock::time_point at;
};

// An HTTP server on 127.0.0.1:<ephemeral> that records every POST and
// answers 204 (or the status set by `FailNext`).
class WebhookReceiver {
 public:
  WebhookReceiver();
  ~WebhookReceiver();
  std::string url(const std::string& path = "/hook") const;
  std::vector<Webhook> Received();
  // Waits until at least `n` requests arrived or `timeout` passes.
  bool WaitFor(size_t n, std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Verifies a Standard Webhooks signature with the subscription secret.
bool VerifySignature(const Webhook& hook, const std::string& whsec_secret);

// A deployment created by `amparo init`, tuned for tests (fast retries,
// port 0 with a port file), with the four daemons as processes.
class Deployment {
 public:
  Deployment();
  ~Deployment();
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::filesystem::path config() const { return dir_.path() / "amparo.toml"; }
  std::filesystem::path spool() const { return dir_.path() / "data" / "spool"; }

  void StartAll();
  // SIGTERM to every daemon and wait; returns how many were not running or
  // did not exit with status 0.
  int StopAll();
  Process& daemon(const std::string& name) { return *daemons_.at(name); }
  // Sets `key = value` (value in TOML syntax, e.g. "\"/x/p.toml\"") in
  // [section] of the config, replacing the key if present. Before StartAll().
  void SetConfig(const std::string& section, const std::string& key, const std::string& value);
  // What daemon `name` wrote to its log so far (stdout and stderr).
  std::string Log(const std::string& name) const;
  // Waits for the gateway's port file and /healthz.
  void WaitHealthy();
  std::string base_url() const { return base_url_; }
  std::string Token(const std::string& state, const std::string& role);
  // Waits until the gateway has handed every registry change to rules (its
  // outbox for "rules" is empty: rules stored and acknowledged them all), so
  // an event replayed afterwards is matched against the whole registry.
  void WaitRegistryHandedOver();

  struct Reply {
    long status;
    boost::json::value json;
  };
  Reply Call(const std::string& method, const std::string& path, const std::string& token,
             const std::string& body = {});

 private:
  testing::TempDir dir_;
  std::map<std::string, std::unique_ptr<Process>> daemons_;
  std::string base_url_;
  cli::HttpClient http_;
};

// The JSON body for POST /api/v1/registrants.
std::string RegistrantBody(const std::string& ref, const std::string& host, double lat, double lon, int household,
                           const std::vector<std::string>& vulnerabilities = {});

// Polls `pred` every 50 ms until it holds or `timeout` passes.
template <typename Pred>
bool Eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

}  // namespace amparo::integration
