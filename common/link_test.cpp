#include "common/link.h"

#include <gtest/gtest.h>

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>

#include "common/testing.h"

namespace amparo {
namespace {

using namespace std::chrono_literals;

v1::Envelope Event(const Clock& clock, const std::string& source_id) {
  v1::Envelope env = MakeEnvelope("test", clock);
  env.mutable_crisis_event()->set_source_id(source_id);
  return env;
}

// Pumps both ends until `done` or ~5 s pass.
template <typename Pred>
bool PumpUntil(LinkSender& s, LinkReceiver* r, Pred done) {
  for (int i = 0; i < 500; ++i) {
    EXPECT_TRUE(s.Pump().ok());
    if (r) {
      EXPECT_TRUE(r->Pump().ok());
    }
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

// After a Pump() that sent a burst of messages: waits (up to 10 s, for a
// loaded machine) until the first has reached the receiver's socket, then
// 300 ms for the rest of the burst, so that one PumpAndProcess call receives
// it whole.
void AwaitBurst(LinkReceiver& receiver) {
  zmq::pollitem_t item{receiver.socket().handle(), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(zmq::poll(&item, 1, std::chrono::milliseconds(10'000)), 1);
  std::this_thread::sleep_for(300ms);
}

class LinkTest : public ::testing::Test {
 protected:
  LinkTest() {
    sender_db_.emplace(std::move(*Db::Open(dir_ / "sender.db")));
    receiver_db_.emplace(std::move(*Db::Open(dir_ / "receiver.db")));
    options_.resend_after_ms = 200;
    endpoint_ = "ipc://" + (dir_ / "inbox.ipc").string();
  }
  Status Enqueue(const v1::Envelope& env) {
    EXPECT_TRUE(InitLinkTables(*sender_db_).ok());
    return EnqueueOutbound(*sender_db_, "receiver", env);
  }
  std::vector<std::string> Drain(LinkReceiver& r) {
    std::vector<std::string> seen;
    auto n = r.ProcessPending(
        [&](const v1::Envelope& env, Db&) {
          seen.push_back(env.crisis_event().source_id());
          return Status::Ok();
        },
        1000);
    EXPECT_TRUE(n.ok());
    return seen;
  }

  // A handler that writes each message's source id to table `work` (undone
  // when it fails) and records it in *seen: `busy_id` fails retryably while
  // *busy, "poison" fails for good.
  static LinkReceiver::Handler Recorder(std::vector<std::string>* seen, const bool* busy,
                                        std::string busy_id) {
    return [seen, busy, busy_id](const v1::Envelope& env, Db& db) -> Status {
      const auto& id = env.crisis_event().source_id();
      if (id == busy_id && *busy) return Unavailable("downstream busy");
      EXPECT_TRUE(db.Exec("CREATE TABLE IF NOT EXISTS work(id TEXT)").ok());
      EXPECT_TRUE(db.Exec("INSERT INTO work VALUES('" + id + "')").ok());
      if (id == "poison") return InvalidArgument("bad event");
      seen->push_back(id);
      return Status::Ok();
    };
  }

  // A bound receiver at endpoint_ and a started sender to it (peer
  // "receiver"), on one context, with options_ as they are when made.
  struct Linked {
    explicit Linked(LinkTest& t)
        : receiver(ctx, *t.receiver_db_, t.endpoint_, t.options_, t.clock_),
          sender(ctx, *t.sender_db_, "receiver", t.endpoint_, t.options_, t.clock_) {
      EXPECT_TRUE(receiver.Bind().ok());
      EXPECT_TRUE(sender.Start().ok());
    }
    LinkContext ctx;
    LinkReceiver receiver;
    LinkSender sender;
  };

  testing::TempDir dir_;
  std::optional<Db> sender_db_, receiver_db_;
  LinkOptions options_;
  std::string endpoint_;
  SystemClock clock_;
};

TEST_F(LinkTest, DeliversInOrderAndEmptiesOutboxOnAck) {
  Linked link(*this);
  LinkReceiver& receiver = link.receiver;
  LinkSender& sender = link.sender;
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(Enqueue(Event(clock_, "ev" + std::to_string(i))).ok());
  auto pending = PendingOutbound(*sender_db_, "receiver");
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 50u);
  EXPECT_EQ((*pending)[49].crisis_event().source_id(), "ev49");
  EXPECT_TRUE(PendingOutbound(*sender_db_, "someone-else")->empty());
  ASSERT_TRUE(PumpUntil(sender, &receiver, [&] { return *sender.Depth() == 0; }));
  EXPECT_TRUE(PendingOutbound(*sender_db_, "receiver")->empty());
  auto seen = Drain(receiver);
  ASSERT_EQ(seen.size(), 50u);
  EXPECT_EQ(seen.front(), "ev0");
  EXPECT_EQ(seen.back(), "ev49");
  EXPECT_EQ(receiver.stats().received, 50u);
}

// With FoldAckDeletes() the owner's transactions delete the acknowledged
// rows; Pump() deletes them itself only after kAckDeleteAfterMs.
TEST_F(LinkTest, FoldedAckDeletesHappenInTheOwnersTransactionOrAfterTheWait) {
  LinkContext ctx;
  LinkReceiver receiver(ctx, *receiver_db_, endpoint_, options_, clock_);
  ASSERT_TRUE(receiver.Bind().ok());
  FakeClock sender_clock;
  LinkSender sender(ctx, *sender_db_, "receiver", endpoint_, options_, sender_clock);
  ASSERT_TRUE(sender.Start().ok());
  sender.FoldAckDeletes();
  auto rows = [&] { return PendingOutbound(*sender_db_, "receiver")->size(); };
  auto all_acked = [&](uint64_t n) {
    return PumpUntil(sender, &receiver, [&] { return sender.stats().acked == n; });
  };

  for (auto id : {"a", "b"}) ASSERT_TRUE(Enqueue(Event(clock_, id)).ok());
  ASSERT_TRUE(all_acked(2));
  EXPECT_EQ(rows(), 2u);  // acknowledged, left for the owner
  {
    // A transaction of the owner's that rolls back deletes nothing...
    auto tx = Transaction::Begin(*sender_db_);
    ASSERT_TRUE(tx.ok());
    size_t deleted = 0;
    ASSERT_TRUE(sender.DeleteAcknowledged(&deleted).ok());
    EXPECT_EQ(deleted, 2u);
  }
  EXPECT_EQ(rows(), 2u);
  {
    // ...one that commits deletes them, and they are forgotten.
    auto tx = Transaction::Begin(*sender_db_);
    ASSERT_TRUE(tx.ok());
    size_t deleted = 0;
    ASSERT_TRUE(sender.DeleteAcknowledged(&deleted).ok());
    EXPECT_EQ(deleted, 2u);
    ASSERT_TRUE(tx->Commit().ok());
    sender.AcknowledgedDeletesCommitted(deleted);
  }
  EXPECT_EQ(rows(), 0u);
  size_t none = 1;
  ASSERT_TRUE(sender.DeleteAcknowledged(&none).ok());
  EXPECT_EQ(none, 0u);

  // Without an owner's transaction: Pump() waits kAckDeleteAfterMs.
  ASSERT_TRUE(Enqueue(Event(clock_, "c")).ok());
  ASSERT_TRUE(all_acked(3));
  ASSERT_TRUE(sender.Pump().ok());
  EXPECT_EQ(rows(), 1u);
  sender_clock.Advance(LinkSender::kAckDeleteAfterMs);
  ASSERT_TRUE(sender.Pump().ok());
  EXPECT_EQ(rows(), 0u);
  EXPECT_EQ(Drain(receiver), (std::vector<std::string>{"a", "b", "c"}));
}

// The receiver runs its caller's extra work inside the batch's transaction:
// when it fails, nothing of the batch is kept or acknowledged.
TEST_F(LinkTest, PumpAndProcessRunsBeforeCommitInsideTheBatch) {
  Linked link(*this);
  LinkReceiver& receiver = link.receiver;
  LinkSender& sender = link.sender;
  ASSERT_TRUE(receiver_db_->Exec("CREATE TABLE extra(x)").ok());
  ASSERT_TRUE(Enqueue(Event(clock_, "a")).ok());
  ASSERT_TRUE(sender.Pump().ok());
  AwaitBurst(receiver);
  auto ok = [](const v1::Envelope&, Db&) { return Status::Ok(); };
  auto failed = receiver.PumpAndProcess(ok, 10, [&] {
    EXPECT_TRUE(receiver_db_->Exec("INSERT INTO extra VALUES(1)").ok());
    return Unavailable("extra work failed");
  });
  EXPECT_FALSE(failed.ok());
  auto count = [&](const char* sql) {
    auto q = receiver_db_->Prepare(sql);
    EXPECT_TRUE(*q->Step());
    return q->ColumnInt(0);
  };
  EXPECT_EQ(count("SELECT count(*) FROM link_inbox"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM extra"), 0);
  EXPECT_EQ(*sender.Depth(), 1);  // not acknowledged: resent after resend_after_ms
  int processed = 0;
  for (int i = 0; i < 500 && processed == 0; ++i) {
    ASSERT_TRUE(sender.Pump().ok());
    auto n =
        receiver.PumpAndProcess(ok, 10, [&] { return receiver_db_->Exec("INSERT INTO extra VALUES(2)"); });
    ASSERT_TRUE(n.ok());
    processed = *n;
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(processed, 1);
  EXPECT_EQ(count("SELECT count(*) FROM link_inbox"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM extra WHERE x = 2"), 1);
}

void IgnoreSignal(int) {}

// A signal landing inside a libzmq call (SIGHUP reloads amparo-rules' policy)
// makes it fail with EINTR, which cppzmq throws: the link must retry, never
// abort the daemon or cut a message in half. A thread keeps interrupting this
// one (a handler without SA_RESTART, as a daemon's) while 3,000 messages go
// through both ends.
TEST_F(LinkTest, SignalsDuringSendAndReceiveNeitherAbortNorLoseMessages) {
  struct sigaction sa {};
  sa.sa_handler = IgnoreSignal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  Linked link(*this);
  LinkReceiver& receiver = link.receiver;
  LinkSender& sender = link.sender;
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(Enqueue(Event(clock_, "ev" + std::to_string(i))).ok());
  std::atomic<bool> stop{false};
  const pthread_t target = pthread_self();
  std::thread interrupter([&] {
    while (!stop) pthread_kill(target, SIGUSR1);
  });
  bool delivered = false;
  try {
    // Tight pumping: most calls find nothing to read and return from a
    // zero-timeout poll inside libzmq, the window a signal hits.
    for (int i = 0; i < 2'000'000 && !delivered; ++i) {
      ASSERT_TRUE(sender.Pump().ok());
      ASSERT_TRUE(receiver.Pump().ok());
      if (i % 1000 == 0) delivered = *sender.Depth() == 0;
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "a signal escaped the link as an exception: " << e.what();
  }
  stop = true;
  interrupter.join();
  sigaction(SIGUSR1, &old, nullptr);
  EXPECT_TRUE(delivered);
  std::vector<std::string> seen;
  for (auto more = Drain(receiver); !more.empty(); more = Drain(receiver)) {
    seen.insert(seen.end(), more.begin(), more.end());
  }
  ASSERT_EQ(seen.size(), 3000u);
  EXPECT_EQ(seen.back(), "ev2999");
  EXPECT_EQ(receiver.stats().rejected, 0u);  // no half messages
}

TEST_F(LinkTest, KeepsMessagesWhileReceiverIsDownAndResendsAfterItStarts) {
  LinkContext ctx;
  LinkSender sender(ctx, *sender_db_, "receiver", endpoint_, options_, clock_);
  ASSERT_TRUE(sender.Start().ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Enqueue(Event(clock_, "ev" + std::to_string(i))).ok());
  PumpUntil(sender, nullptr, [] { return false; });  // nobody listening
  EXPECT_EQ(*sender.Depth(), 5);

  LinkReceiver receiver(ctx, *receiver_db_, endpoint_, options_, clock_);
  ASSERT_TRUE(receiver.Bind().ok());
  ASSERT_TRUE(PumpUntil(sender, &receiver, [&] { return *sender.Depth() == 0; }));
  EXPECT_EQ(Drain(receiver).size(), 5u);
}

TEST_F(LinkTest, ReceiverRestartLosesNothingAndStoresNothingTwice) {
  LinkContext ctx;
  LinkSender sender(ctx, *sender_db_, "receiver", endpoint_, options_, clock_);
  ASSERT_TRUE(sender.Start().ok());
  {
    LinkReceiver first(ctx, *receiver_db_, endpoint_, options_, clock_);
    ASSERT_TRUE(first.Bind().ok());
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(Enqueue(Event(clock_, "a" + std::to_string(i))).ok());
    // Receive and store, but do not let the acks reach the sender: the
    // receiver socket closes before the sender reads them.
    sender.Pump().ok();
    std::this_thread::sleep_for(100ms);
    ASSERT_TRUE(first.Pump().ok());
  }
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Enqueue(Event(clock_, "b" + std::to_string(i))).ok());
  LinkReceiver second(ctx, *receiver_db_, endpoint_, options_, clock_);
  ASSERT_TRUE(second.Bind().ok());
  ASSERT_TRUE(PumpUntil(sender, &second, [&] { return *sender.Depth() == 0; }));
  auto seen = Drain(second);
  EXPECT_EQ(seen.size(), 20u);  // each exactly once, though some were resent
  std::set<std::string> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), 20u);
}

TEST_F(LinkTest, RetryableHandlerErrorKeepsOrderAndPermanentErrorDeadLetters) {
  Linked link(*this);
  LinkReceiver& receiver = link.receiver;
  LinkSender& sender = link.sender;
  for (auto id : {"ok1", "poison", "ok2"}) ASSERT_TRUE(Enqueue(Event(clock_, id)).ok());
  ASSERT_TRUE(PumpUntil(sender, &receiver, [&] { return *sender.Depth() == 0; }));

  std::vector<std::string> seen;
  bool busy = true;
  auto handler = Recorder(&seen, &busy, "ok2");
  EXPECT_EQ(*receiver.ProcessPending(handler, 10), 2);  // ok1, poison; stops at ok2
  EXPECT_EQ(*receiver.Backlog(), 1);
  busy = false;
  EXPECT_EQ(*receiver.ProcessPending(handler, 10), 1);
  EXPECT_EQ(seen, (std::vector<std::string>{"ok1", "ok2"}));
  EXPECT_EQ(receiver.stats().failed, 1u);
  auto q = receiver_db_->Prepare("SELECT group_concat(id) FROM work");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnText(0), "ok1,ok2");  // poison's write rolled back
  auto dead = receiver_db_->Prepare("SELECT error FROM link_inbox WHERE error IS NOT NULL");
  ASSERT_TRUE(*dead->Step());
  EXPECT_EQ(dead->ColumnText(0), "INVALID_ARGUMENT: bad event");
}

TEST_F(LinkTest, PumpAndProcessStoresProcessesAndAcknowledgesInOneCommit) {
  Linked link(*this);
  LinkReceiver& receiver = link.receiver;
  LinkSender& sender = link.sender;
  // One message stored by a plain Pump() and left pending: it goes first.
  ASSERT_TRUE(Enqueue(Event(clock_, "old")).ok());
  ASSERT_TRUE(PumpUntil(sender, &receiver, [&] { return *sender.Depth() == 0; }));
  ASSERT_EQ(*receiver.Backlog(), 1);

  std::vector<std::string> seen;
  auto handler = [&](const v1::Envelope& env, Db& db) -> Status {
    EXPECT_TRUE(db.Exec("CREATE TABLE IF NOT EXISTS work(id TEXT)").ok());
    EXPECT_TRUE(db.Exec("INSERT INTO work VALUES('" + env.crisis_event().source_id() + "')").ok());
    seen.push_back(env.crisis_event().source_id());
    return Status::Ok();
  };
  // Pumps the sender and lets the receiver store and process until `want`
  // messages were processed (or ~500 rounds); returns how many were.
  auto process = [&](int want) {
    int done = 0;
    for (int i = 0; i < 500 && done < want; ++i) {
      EXPECT_TRUE(sender.Pump().ok());
      auto n = receiver.PumpAndProcess(handler, 10);
      EXPECT_TRUE(n.ok()) << n.status().ToString();
      if (!n.ok()) return done;
      done += *n;
      if (done < want) std::this_thread::sleep_for(5ms);
    }
    return done;
  };
  for (auto id : {"a", "b", "c"}) ASSERT_TRUE(Enqueue(Event(clock_, id)).ok());
  ASSERT_EQ(process(4), 4);
  EXPECT_EQ(seen, (std::vector<std::string>{"old", "a", "b", "c"}));
  EXPECT_EQ(*receiver.Backlog(), 0);
  EXPECT_EQ(receiver.stats().received, 4u);
  EXPECT_EQ(receiver.stats().processed, 4u);
  // Acknowledged after the commit: the sender's outbox empties.
  ASSERT_TRUE(PumpUntil(sender, nullptr, [&] { return *sender.Depth() == 0; }));

  // The call's transaction fails (here a handler that breaks the rules and
  // ends it): nothing of the call is kept, not even the stored message, and
  // nothing is acknowledged, so the sender resends and the message is
  // processed once when things recover.
  ASSERT_TRUE(Enqueue(Event(clock_, "d")).ok());
  Status failed;
  for (int i = 0; i < 500 && failed.ok(); ++i) {
    ASSERT_TRUE(sender.Pump().ok());
    auto n = receiver.PumpAndProcess(
        [&](const v1::Envelope&, Db& db) {
          EXPECT_TRUE(db.Exec("ROLLBACK").ok());
          return Status::Ok();
        },
        10);
    if (!n.ok()) failed = n.status();
    else std::this_thread::sleep_for(5ms);
  }
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(*receiver.Backlog(), 0);  // rolled back: not stored
  EXPECT_EQ(*sender.Depth(), 1);      // not acknowledged
  ASSERT_EQ(process(1), 1);  // resent after resend_after_ms
  EXPECT_EQ(seen, (std::vector<std::string>{"old", "a", "b", "c", "d"}));
  ASSERT_TRUE(PumpUntil(sender, nullptr, [&] { return *sender.Depth() == 0; }));
  auto q = receiver_db_->Prepare("SELECT group_concat(id) FROM work");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnText(0), "old,a,b,c,d");
}

// With nothing older pending, PumpAndProcess writes each row once as it
// ends: a processed message keeps only its id, a dead letter its envelope
// and error, and a retryable failure, what follows it and what is past
// `max` are stored pending, in order, with their envelopes.
TEST_F(LinkTest, PumpAndProcessWritesEachRowInItsFinalState) {
  Linked link(*this);
  LinkReceiver& receiver = link.receiver;
  LinkSender& sender = link.sender;
  std::vector<std::string> seen;
  bool busy = true;
  auto handler = Recorder(&seen, &busy, "busy");
  // Sends everything enqueued and waits until it has arrived, so that one
  // PumpAndProcess call receives it as one batch.
  auto send_all = [&] {
    ASSERT_TRUE(sender.Pump().ok());
    AwaitBurst(receiver);
  };
  auto rows = [&] {
    std::vector<std::string> out;
    auto q = receiver_db_->Prepare(
        "SELECT message_id, envelope IS NULL, processed_ms IS NULL, coalesce(error, '') FROM link_inbox "
        "ORDER BY seq");
    std::map<std::string, std::string> source_of;
    auto s = sender_db_->Prepare("SELECT message_id, envelope FROM link_outbox");
    while (*s->Step()) {
      v1::Envelope env;
      env.ParseFromString(s->ColumnBlob(1));
      source_of[s->ColumnText(0)] = env.crisis_event().source_id();
    }
    while (*q->Step()) {
      out.push_back(source_of[q->ColumnText(0)] + (q->ColumnInt(1) ? " no-envelope" : " envelope") +
                    (q->ColumnInt(2) ? " pending" : " done") + (q->ColumnText(3).empty() ? "" : " error"));
    }
    return out;
  };

  for (auto id : {"ok1", "poison", "busy", "ok2"}) ASSERT_TRUE(Enqueue(Event(clock_, id)).ok());
  send_all();
  EXPECT_EQ(*receiver.PumpAndProcess(handler, 10), 2);  // ok1, poison; stops at busy
  EXPECT_EQ(rows(), (std::vector<std::string>{"ok1 no-envelope done", "poison envelope done error",
                                              "busy envelope pending", "ok2 envelope pending"}));
  EXPECT_EQ(receiver.stats().received, 4u);
  EXPECT_EQ(receiver.stats().failed, 1u);
  busy = false;
  EXPECT_EQ(*receiver.PumpAndProcess(handler, 10), 2);  // nothing new: the pending two, in order
  EXPECT_EQ(seen, (std::vector<std::string>{"ok1", "busy", "ok2"}));
  EXPECT_EQ(*receiver.Backlog(), 0);

  // Past `max` the batch is stored pending; the next call takes it first.
  seen.clear();
  for (auto id : {"x1", "x2", "x3", "x4"}) ASSERT_TRUE(Enqueue(Event(clock_, id)).ok());
  send_all();
  EXPECT_EQ(*receiver.PumpAndProcess(handler, 2), 2);
  EXPECT_EQ(*receiver.Backlog(), 2);
  EXPECT_EQ(*receiver.PumpAndProcess(handler, 10), 2);
  EXPECT_EQ(seen, (std::vector<std::string>{"x1", "x2", "x3", "x4"}));
  auto work = receiver_db_->Prepare("SELECT group_concat(id) FROM work");
  ASSERT_TRUE(*work->Step());
  EXPECT_EQ(work->ColumnText(0), "ok1,busy,ok2,x1,x2,x3,x4");  // poison's and busy's first writes rolled back
  auto envelopes = receiver_db_->Prepare("SELECT count(*) FROM link_inbox WHERE envelope IS NOT NULL");
  ASSERT_TRUE(*envelopes->Step());
  EXPECT_EQ(envelopes->ColumnInt(0), 1);  // only the dead letter keeps its envelope
}

// A processed message's row is written once, without its envelope: 40
// messages of ~9 KB (an alert's size) leave the inbox's rows on one leaf page.
// (Storing each envelope and clearing it after the handler left one mostly
// empty leaf per message, all written at the commit.)
TEST_F(LinkTest, PumpAndProcessLeavesProcessedRowsCompact) {
  Linked link(*this);
  LinkReceiver& receiver = link.receiver;
  LinkSender& sender = link.sender;
  for (int i = 0; i < 40; ++i) {
    v1::Envelope env = Event(clock_, "big" + std::to_string(i));
    env.mutable_crisis_event()->set_place(std::string(9000, 'p'));
    ASSERT_TRUE(Enqueue(env).ok());
  }
  ASSERT_TRUE(sender.Pump().ok());
  AwaitBurst(receiver);
  auto n = receiver.PumpAndProcess([](const v1::Envelope&, Db&) { return Status::Ok(); }, 100);
  ASSERT_TRUE(n.ok());
  ASSERT_EQ(*n, 40);
  auto pages = receiver_db_->Prepare("SELECT count(*) FROM dbstat WHERE name = 'link_inbox'");
  ASSERT_TRUE(pages.ok()) << pages.status().ToString();
  ASSERT_TRUE(*pages->Step());
  EXPECT_EQ(pages->ColumnInt(0), 1);
}

TEST_F(LinkTest, RejectsEnvelopeWithUnknownSchemaVersion) {
  Linked link(*this);
  LinkReceiver& receiver = link.receiver;
  LinkSender& sender = link.sender;
  v1::Envelope env = Event(clock_, "future");
  env.set_schema_version(99);
  ASSERT_TRUE(Enqueue(env).ok());
  ASSERT_TRUE(PumpUntil(sender, &receiver, [&] { return *sender.Depth() == 0; }));
  EXPECT_EQ(receiver.stats().rejected, 1u);
  EXPECT_EQ(*receiver.Backlog(), 0);
}

TEST_F(LinkTest, CurveOverTcpAcceptsKnownClientAndRefusesUnknownKey) {
  options_.curve = CurveMode::kAuto;
  CurveKeyPair server = GenerateCurveKeyPair();
  CurveKeyPair known = GenerateCurveKeyPair();
  CurveKeyPair stranger = GenerateCurveKeyPair();
  ASSERT_TRUE(WriteCurveKeyPair(dir_ / "keys", "rules", server).ok());
  ASSERT_TRUE(WriteCurveKeyPair(dir_ / "keys", "ingest", known).ok());
  auto allowed = ReadAllowedKeys(dir_ / "keys");
  ASSERT_TRUE(allowed.ok());
  EXPECT_EQ(allowed->count(stranger.public_key), 0u);

  LinkContext server_ctx;
  server_ctx.StartZap(*allowed);
  // Port 0 is not possible for a ROUTER we must name to clients; use a
  // fixed high loopback port unlikely to collide.
  std::string endpoint = "tcp://127.0.0.1:" + std::to_string(40000 + (getpid() % 20000));
  LinkReceiver receiver(server_ctx, *receiver_db_, endpoint, options_, clock_, server);
  ASSERT_TRUE(receiver.Bind().ok());

  // A client whose key is not in the allow-list gets nothing through.
  auto bad_db = Db::Open(dir_ / "bad.db");
  LinkContext bad_ctx;
  LinkSender bad(bad_ctx, *bad_db, "receiver", endpoint, options_, clock_, stranger, server.public_key);
  ASSERT_TRUE(bad.Start().ok());
  ASSERT_TRUE(InitLinkTables(*bad_db).ok());
  ASSERT_TRUE(EnqueueOutbound(*bad_db, "receiver", Event(clock_, "intruder")).ok());
  PumpUntil(bad, &receiver, [] { return false; });
  EXPECT_EQ(*bad.Depth(), 1);
  EXPECT_EQ(receiver.stats().received, 0u);
  EXPECT_GE(server_ctx.refused(), 1);

  LinkContext good_ctx;
  LinkSender good(good_ctx, *sender_db_, "receiver", endpoint, options_, clock_, known, server.public_key);
  ASSERT_TRUE(good.Start().ok());
  ASSERT_TRUE(Enqueue(Event(clock_, "trusted")).ok());
  ASSERT_TRUE(PumpUntil(good, &receiver, [&] { return *good.Depth() == 0; }));
  EXPECT_EQ(Drain(receiver), std::vector<std::string>{"trusted"});
}

}  // namespace
}  // namespace amparo
