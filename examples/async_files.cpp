// Promises, an async function and the fs and dns modules on the thread pool:
// the README's snippets as one program.
#include <phaseloop/phaseloop.hpp>

#include <cstdio>
#include <string>
#include <vector>

using namespace std::chrono_literals;

phaseloop::promise<int> answer_later(phaseloop::loop& loop) {  // an async function
  co_await loop.delay(10ms);                                    // timers/promises setTimeout
  co_return 42;
}

phaseloop::promise<void> report_size(phaseloop::loop& loop, std::string path) {
  try {
    auto st = co_await phaseloop::fs::promises::stat(loop, path);  // rejects with std::system_error
    std::printf("%s: %lld bytes\n", path.c_str(), static_cast<long long>(st.size));
  } catch (const std::system_error& e) {
    std::printf("%s: %s\n", path.c_str(), e.code().message().c_str());
  }
}

int main(int, char** argv) {
  phaseloop::loop loop;
  loop.resolved(1).then([](int& v) { return v + 1; }).then([](int& v) { std::printf("then-chain gave %d\n", v); });
  phaseloop::all(loop, std::vector{answer_later(loop), answer_later(loop)}).then([](std::vector<int>& v) {
    std::printf("all: %d %d\n", v[0], v[1]);
  });
  phaseloop::fs::read_file(loop, argv[0], [](std::error_code ec, std::string data) {
    std::printf("read_file: %s, %zu bytes\n", ec ? ec.message().c_str() : "ok", data.size());
  });
  report_size(loop, "/no/such/file");
  phaseloop::dns::lookup(loop, "localhost", {.all = true},
                         [](std::error_code ec, std::vector<phaseloop::dns::lookup_address> addrs) {
                           std::printf("localhost: %s, %zu address(es)\n", ec ? ec.message().c_str() : "ok",
                                       addrs.size());
                         });
  auto w = loop.queue_work([] { /* blocking work on the pool */ }, [](std::error_code ec) {
    std::printf("queue_work: %s\n", ec ? ec.message().c_str() : "done");
  });
  (void)w;
  loop.run();
}
