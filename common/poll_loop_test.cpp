#include <gtest/gtest.h>

#include <chrono>
#include <zmq.hpp>

#include "common/daemon.h"

namespace amparo {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// A PULL socket fed over inproc://, read by a PollLoop reader that counts
// its calls and what each took.
struct Fed {
  zmq::context_t ctx;
  zmq::socket_t pull{ctx, zmq::socket_type::pull};
  zmq::socket_t push{ctx, zmq::socket_type::push};
  Fed() {
    pull.bind("inproc://poll-loop-test");
    push.connect("inproc://poll-loop-test");
  }
  void Send(int n) {
    for (int i = 0; i < n; ++i) push.send(zmq::str_buffer("m"), zmq::send_flags::none);
  }
  int Drain() {
    int n = 0;
    zmq::message_t m;
    while (pull.recv(m, zmq::recv_flags::dontwait)) ++n;
    return n;
  }
};

TEST(PollLoopTest, AReaderRunsWhenItsSocketIsReadable) {
  Fed fed;
  PollLoop loop;
  std::vector<int> batches;
  loop.OnReadable(fed.pull, [&] { batches.push_back(fed.Drain()); });
  loop.RunOnce(0ms);
  EXPECT_TRUE(batches.empty());
  fed.Send(2);
  for (int i = 0; i < 100 && batches.empty(); ++i) loop.RunOnce(10ms);
  EXPECT_EQ(batches, std::vector<int>{2});
}

// A deferred reader is not called while messages arrive, however readable
// its socket; at the deferral's end it runs once and takes them all.
TEST(PollLoopTest, ADeferredReaderRunsOnceAtItsTimeAndTakesWhatArrivedMeanwhile) {
  Fed fed;
  PollLoop loop;
  std::vector<int> batches;
  std::vector<SteadyClock::time_point> called_at;
  loop.OnReadable(fed.pull, [&] {
    called_at.push_back(SteadyClock::now());
    batches.push_back(fed.Drain());
  });
  const auto until = SteadyClock::now() + 300ms;
  loop.DeferReadable(fed.pull, until);
  fed.Send(3);
  // The loop waits for the deferral's end, not for the readable socket.
  const auto before = SteadyClock::now();
  loop.RunOnce(5'000ms);
  EXPECT_GE(SteadyClock::now(), until);
  EXPECT_LT(SteadyClock::now() - before, 4'000ms);
  fed.Send(2);  // after its time: taken at the next readable turn
  for (int i = 0; i < 100 && batches.size() < 2; ++i) loop.RunOnce(10ms);
  ASSERT_EQ(batches, (std::vector<int>{3, 2}));
  EXPECT_GE(called_at[0], until);
}

// Deferred with nothing to read: the reader still runs at its time (it may
// have work of its own due then), once.
TEST(PollLoopTest, ADeferredReaderRunsAtItsTimeEvenWithNothingToRead) {
  Fed fed;
  PollLoop loop;
  int calls = 0;
  loop.OnReadable(fed.pull, [&] { ++calls; });
  loop.DeferReadable(fed.pull, SteadyClock::now() + 50ms);
  loop.RunOnce(2'000ms);
  EXPECT_EQ(calls, 1);
  loop.RunOnce(20ms);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace amparo
