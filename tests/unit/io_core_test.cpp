// The loop's side of the I/O contract, as handle modules see it through
// loop_core: when completions run, exactly one final completion per started
// operation, the close protocol waiting for the backend, module records in
// loop-owned pools, and teardown with operations in flight.
// phaseloop: portable

#include "support.hpp"

#include <memory>
#include <optional>
#include <string>

using namespace phaseloop;
using namespace phaseloop::test;

namespace {

/// A minimal handle module: one operation, a trace of its completions.
struct probe_record : handle_record {
  operation op;
  char bytes[16] = {};
  io_buffer buffer{bytes, sizeof bytes};
  trace* out = nullptr;
  std::shared_ptr<int> token;  // destroyed with the record
  unsigned completions = 0;
  bool resubmit_once = false;
};

class probe : public basic_handle<probe> {
 public:
  probe(loop_core& loop, native_handle fd, op_kind kind, trace& out) : basic_handle<probe>(make(loop, fd, kind, out)) {}
  std::error_code start() { return rec().loop->submit(rec().op); }
  void cancel() { rec().loop->cancel(rec().op); }
  probe_record& rec() { return *record<probe_record>(); }

 private:
  static handle_record& make(loop_core& loop, native_handle fd, op_kind kind, trace& out) {
    auto& r = loop.make_record<probe_record>();
    r.op.kind = kind;
    r.op.fd = fd;
    r.op.buffers = &r.buffer;
    r.op.buffer_count = 1;
    r.op.user = &r;
    r.op.owner = &r;
    r.op.complete = &complete;
    r.out = &out;
    r.stop = [](handle_record& h) {
      auto& p = static_cast<probe_record&>(h);
      p.loop->cancel(p.op);
    };
    return r;
  }
  static void complete(operation& op) {
    auto& r = *static_cast<probe_record*>(op.user);
    ++r.completions;
    r.out->push_back(op.error ? "op: " + op.error.message() : "op: " + std::to_string(op.transferred));
    if (r.resubmit_once && !op.error) {
      r.resubmit_once = false;
      (void)r.loop->submit(r.op);
    }
  }
};

}  // namespace

TEMPLATE_TEST_CASE("an operation finished during submit completes in the next pending phase", "[io]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  loop.backend().set_complete_at_submit(true);
  trace out;
  probe p(loop, 5, op_kind::send, out);
  p.rec().buffer.size = 3;
  loop.set_timeout([&] {
    REQUIRE_FALSE(p.start());
    CHECK(p.rec().op.state == op_state::completed);
    out.push_back("timer");  // never synchronously: the completion comes after
    loop.set_immediate([&] { out.push_back("immediate"); });
  }, 1ms);
  auto check = loop.make_check();
  check.start([&] {
    if (out.size() == 3) {
      REQUIRE_FALSE(p.start());  // from the check phase: the next iteration's pending phase
      out.push_back("check");
    }
  });
  check.unref();
  loop.run();
  CHECK(out == trace{"timer", "op: 3", "immediate", "check", "op: 3"});
  CHECK(loop.backend().take_written(5) == std::string(6, '\0'));
}

TEMPLATE_TEST_CASE("an operation resubmitted from its own completion continues the poll phase", "[io]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  loop.backend().set_complete_at_submit(true);
  trace out;
  probe p(loop, 6, op_kind::recv, out);
  loop.backend().feed(6, "ab");
  loop.backend().feed(6, "cde");
  loop.backend().set_complete_at_submit(false);
  REQUIRE_FALSE(p.start());  // completes at the next poll
  loop.backend().set_complete_at_submit(true);
  p.rec().resubmit_once = true;
  loop.set_immediate([&] { out.push_back("immediate"); });
  loop.run(run_mode::once);
  // Both reads ran in the one poll phase, before the check phase.
  CHECK(out == trace{"op: 2", "op: 3", "immediate"});
  p.close();
  loop.run();
}

TEMPLATE_TEST_CASE("a cancelled operation completes once, in the close phase at the latest, before close callbacks",
                   "[io]", PHASELOOP_TEST_MOCK_LOOPS) {
  for (bool async : {false, true}) {
    CAPTURE(async);
    TestType loop;
    loop.backend().set_async_cancel(async);
    trace out;
    probe p(loop, 7, op_kind::recv, out);
    REQUIRE_FALSE(p.start());
    loop.set_timeout([&] {
      p.close([&] { out.push_back("closed"); });
      loop.set_immediate([&] { out.push_back("immediate"); });
    }, 1ms);
    loop.run();
    const std::string cancelled = "op: " + std::make_error_code(std::errc::operation_canceled).message();
    if (async)  // a completion backend gives it back in the next poll phase
      CHECK(out == trace{cancelled, "immediate", "closed"});
    else  // a readiness backend let go at once: delivered first thing in the close phase
      CHECK(out == trace{"immediate", cancelled, "closed"});
  }
}

TEMPLATE_TEST_CASE("a closed handle's record is released only once the backend gives its operation back", "[io]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  loop.backend().set_async_cancel(true);
  trace out;
  auto token = std::make_shared<int>(1);
  {
    probe p(loop, 8, op_kind::recv, out);
    p.rec().token = token;
    REQUIRE_FALSE(p.start());
  }  // destroyed: closed
  CHECK(token.use_count() == 2);
  CHECK(loop.alive());                       // the closing handle waits for its operation
  CHECK_FALSE(loop.run(run_mode::nowait));  // the cancellation completes in this poll
  CHECK(token.use_count() == 1);            // and the record went in the close phase
  CHECK_FALSE(loop.alive());
  CHECK(out.size() == 1);
}

TEMPLATE_TEST_CASE("a loop destroyed with operations in flight frees every record", "[io]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  for (bool async : {false, true}) {
    auto token = std::make_shared<int>(1);
    trace out;
    std::optional<probe> kept;
    {
      TestType loop;
      loop.backend().set_async_cancel(async);
      kept.emplace(loop, 9, op_kind::recv, out);
      kept->rec().token = token;
      REQUIRE_FALSE(kept->start());
      probe closing(loop, 10, op_kind::recv, out);
      closing.rec().token = token;
      REQUIRE_FALSE(closing.start());
      closing.close();
      loop.defer([token] {});
      CHECK(token.use_count() == 4);
    }
    CHECK(token.use_count() == 1);
    CHECK_FALSE(*kept);  // the handle outlived its loop: empty
    kept->close();       // and harmless
    CHECK(out.empty());  // nothing ran
  }
}

TEMPLATE_TEST_CASE("module records come from the loop's pools", "[io]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  const void* first = nullptr;
  {
    probe p(loop, 11, op_kind::recv, out);
    first = &p.rec();
  }
  loop.run();
  probe again(loop, 12, op_kind::recv, out);
  CHECK(static_cast<const void*>(&again.rec()) == first);  // the released slot, reused
}
