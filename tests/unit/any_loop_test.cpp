// any_loop: code written once against a loop reference runs on test_loop
// (virtual time) and on the platform's loop, with the typed loop's semantics.
// phaseloop: portable (the mock loop everywhere; the real loop where there is one)
#include "support.hpp"


#include <cstdio>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using phaseloop::any_loop;

// A user's service, not a template: it sends a heartbeat every `every` and
// gives up (closing) after `misses` heartbeats without an acknowledgement.
class heartbeat {
 public:
  heartbeat(any_loop loop, std::chrono::milliseconds every, int misses)
      : loop_(loop), misses_allowed_(misses) {
    timer_ = loop_.set_interval([this] { beat(); }, every);
  }
  void acknowledge() { missed_ = 0; }
  [[nodiscard]] const std::vector<long long>& beats() const { return beats_; }
  [[nodiscard]] bool closed() const { return closed_; }

 private:
  void beat() {
    beats_.push_back(static_cast<long long>(loop_.now().count()));
    if (++missed_ > misses_allowed_) {
      closed_ = true;
      loop_.clear_interval(timer_);
    }
  }
  any_loop loop_;
  any_loop::timer_handle timer_;
  int misses_allowed_;
  int missed_ = 0;
  bool closed_ = false;
  std::vector<long long> beats_;
};

}  // namespace

TEST_CASE("any_loop: a service written once runs on test_loop under virtual time", "[any_loop]") {
  phaseloop::test_loop loop;
  heartbeat hb(loop, 1s, 3);
  loop.set_timeout([&] { hb.acknowledge(); }, 2500ms);  // resets the miss count once
  loop.run();
  CHECK(hb.closed());
  // Beats at 1..6 s: misses 1, 2, (ack at 2.5 s), 1, 2, 3, 4 > 3 closes at 6 s.
  CHECK(hb.beats() == std::vector<long long>{1000, 2000, 3000, 4000, 5000, 6000});
  CHECK(loop.now() == 6s);
}

TEST_CASE("any_loop: ordering of ticks, microtasks, timers and immediates is the loop's", "[any_loop]") {
  phaseloop::test_loop typed;
  any_loop loop = typed;
  std::string order;
  loop.set_timeout([&] {
    order += "T";
    loop.set_immediate([&] { order += "I"; });
    loop.set_timeout([&] { order += "t"; }, 0ms);
    loop.queue_microtask([&] { order += "m"; });
    loop.next_tick([&] { order += "n"; });
  }, 1ms);
  loop.run();
  CHECK(order == "TnmIt");
}

TEST_CASE("any_loop: handles keep the typed handles' behaviour", "[any_loop]") {
  phaseloop::test_loop typed;
  any_loop loop = typed;
  int fired = 0;
  auto t = loop.set_timeout([&] { ++fired; }, 10ms);
  CHECK(t.active());
  CHECK(t.has_ref());
  auto copy = t;
  CHECK(copy == t);
  CHECK_FALSE(any_loop::timer_handle{} == t);
  t.unref();
  CHECK_FALSE(copy.has_ref());
  CHECK_FALSE(loop.alive());  // only an unref'd timer
  t.ref();
  CHECK(loop.alive());

  auto i = loop.set_immediate([&] { fired += 100; });
  CHECK(i.pending());
  loop.clear_immediate(i);
  CHECK_FALSE(i.pending());

  // A self-clearing interval through the handle its callback receives.
  int ticks = 0;
  loop.set_interval([&](any_loop::timer_handle& self) {
    if (++ticks == 3) loop.clear_interval(self);
  }, 5ms);
  loop.run();
  CHECK(fired == 1);
  CHECK(ticks == 3);
  CHECK_FALSE(t.active());
  loop.clear_timeout(t);  // stale: a no-op
  loop.clear_timeout(any_loop::timer_handle{});

  // refresh() restarts the countdown from now.
  const auto start = loop.now();
  std::chrono::milliseconds at{};
  auto r = loop.set_timeout([&] { at = loop.now(); }, 10ms);
  loop.set_timeout([&] { r.refresh(); }, 5ms);
  loop.run();
  CHECK(at - start == 15ms);
}

TEST_CASE("any_loop: delays follow the loop's rule for out-of-range values", "[any_loop]") {
  phaseloop::test_loop typed;
  any_loop loop = typed;
  std::vector<long long> at;
  loop.set_timeout([&] { at.push_back(loop.now().count()); }, 0ms);
  loop.set_timeout([&] { at.push_back(loop.now().count()); }, std::chrono::hours(1000000));  // > 2^31-1 ms
  loop.set_timeout([&] { at.push_back(loop.now().count()); }, 2500us);  // truncated to 2 ms
  loop.run();
  CHECK(at == std::vector<long long>{1, 1, 2});
}

TEST_CASE("any_loop: promises, coroutines and work on the erased loop", "[any_loop]") {
  phaseloop::test_loop typed;
  any_loop loop = typed;
  std::vector<std::string> seen;
  auto task = [&]() -> phaseloop::promise<int> {
    co_await loop.delay(50ms);
    seen.push_back("delay at " + std::to_string(loop.now().count()));
    int v = co_await loop.delay(10ms, 7);
    co_await loop.immediate();
    co_return v * 6;
  };
  int result = 0;
  task().then([&](int v) { result = v; });
  bool worked = false;
  std::error_code after_error = std::make_error_code(std::errc::io_error);
  loop.queue_work([&] { worked = true; }, [&](std::error_code ec) { after_error = ec; });
  auto rejected = loop.rejected<int>(std::make_error_code(std::errc::timed_out));
  std::string reason;
  rejected.catch_([&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::system_error& err) {
      reason = err.code() == std::errc::timed_out ? "timed_out" : "other";
    }
    return 0;
  });
  loop.run();
  CHECK(result == 42);
  CHECK(seen == std::vector<std::string>{"delay at 50"});
  CHECK(worked);
  CHECK_FALSE(after_error);
  CHECK(reason == "timed_out");
  CHECK(loop.now() == 60ms);
}

TEST_CASE("any_loop: target() gives the typed loop back", "[any_loop]") {
  phaseloop::test_loop typed;
  any_loop loop = typed;
  CHECK(loop.target<phaseloop::test_loop>() == &typed);
  CHECK(loop.target<phaseloop::test::mock_wheel_loop>() == nullptr);
  CHECK(&loop.core() == static_cast<phaseloop::loop_core*>(&typed));
}

#if defined(PHASELOOP_HAS_DEFAULT_BACKEND)
TEST_CASE("any_loop: the same service on the platform's loop, and fs through any_loop", "[any_loop]") {
  phaseloop::loop real;
  heartbeat hb(real, 2ms, 2);
  real.run();
  CHECK(hb.closed());
  CHECK(hb.beats().size() == 3);

  any_loop loop = real;
  std::string path = "phaseloop_any_loop_test.txt";
  std::string read_back;
  std::error_code ec_write, ec_read;
  phaseloop::fs::write_file(loop, path, std::string("through any_loop"), [&](std::error_code ec) {
    ec_write = ec;
    phaseloop::fs::read_file(loop, path, [&](std::error_code ec2, std::string data) {
      ec_read = ec2;
      read_back = std::move(data);
      phaseloop::fs::unlink(loop, path, [](std::error_code) {});
    });
  });
  loop.run();
  CHECK_FALSE(ec_write);
  CHECK_FALSE(ec_read);
  CHECK(read_back == "through any_loop");
}
#endif
