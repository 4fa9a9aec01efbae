// phaseloop::dns: lookups on loopback names and numeric hosts only (no network).
#include "support.hpp"

#if !defined(_WIN32)

#include <algorithm>
#include <optional>
#include <system_error>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace phaseloop;

using phaseloop::test::pool_loop;

using addresses = std::vector<dns::lookup_address>;

template <class Loop>
std::pair<std::error_code, addresses> lookup(Loop& loop, std::string host, dns::lookup_options options = {}) {
  std::optional<std::pair<std::error_code, addresses>> got;
  dns::lookup(loop, std::move(host), options, [&](std::error_code ec, addresses a) {
    REQUIRE_FALSE(got.has_value());
    got.emplace(ec, std::move(a));
  });
  CHECK_FALSE(got.has_value());
  loop.run();
  REQUIRE(got.has_value());
  return std::move(*got);
}

bool contains(const addresses& list, const std::string& address, int family) {
  return std::find(list.begin(), list.end(), dns::lookup_address{address, family}) != list.end();
}

}  // namespace

TEMPLATE_TEST_CASE("dns::lookup resolves numeric hosts without a resolver round trip", "[dns]",
                   PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  auto [ec4, v4] = lookup(loop, "127.0.0.1");
  CHECK_FALSE(ec4);
  CHECK(v4 == addresses{{"127.0.0.1", 4}});
  auto [ec6, v6] = lookup(loop, "::1");
  CHECK_FALSE(ec6);
  CHECK(v6 == addresses{{"::1", 6}});
  auto [ecf, vf] = lookup(loop, "127.0.0.1", {.family = 4});
  CHECK_FALSE(ecf);
  CHECK(vf == addresses{{"127.0.0.1", 4}});
  // An IPv4 literal asked for as IPv6 has no answer.
  auto [ecx, vx] = lookup(loop, "127.0.0.1", {.family = 6, .hints = AI_NUMERICHOST});
  CHECK(ecx);
  CHECK(vx.empty());
}

TEMPLATE_TEST_CASE("dns::lookup resolves localhost; all gives every address", "[dns]", PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  auto [ec, first] = lookup(loop, "localhost");
  CHECK_FALSE(ec);
  REQUIRE(first.size() == 1);
  CHECK((first[0] == dns::lookup_address{"127.0.0.1", 4} || first[0] == dns::lookup_address{"::1", 6}));
  auto [ec_all, all] = lookup(loop, "localhost", {.all = true});
  CHECK_FALSE(ec_all);
  REQUIRE_FALSE(all.empty());
  CHECK(all.front() == first.front());
  CHECK((contains(all, "127.0.0.1", 4) || contains(all, "::1", 6)));
  auto [ec4, only4] = lookup(loop, "localhost", {.family = 4, .all = true});
  CHECK_FALSE(ec4);
  CHECK(only4 == addresses{{"127.0.0.1", 4}});
}

TEMPLATE_TEST_CASE("dns::lookup rejects bad hostnames with a clear error, never truncating", "[dns]",
                   PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  const std::error_code bad = dns::errc::bad_hostname;
  CHECK(bad.message().find("253") != std::string::npos);
  CHECK(lookup(loop, "").first == bad);
  CHECK(lookup(loop, std::string("localhost\0.example.com", 22)).first == bad);
  CHECK(lookup(loop, std::string("127.0.0.1\0", 10)).first == bad);
  // 254 characters: too long, even though its first 9 say "localhost".
  CHECK(lookup(loop, "localhost" + std::string(245, 'x')).first == bad);
  CHECK(lookup(loop, ".").first == bad);
  // 253 characters, and 253 plus a trailing dot, are well-formed (checked
  // without a resolver call: no network in tests).
  std::string name;
  while (name.size() < 253) name += std::string(62, 'a') + ".";
  name.resize(253, 'a');
  CHECK_FALSE(phaseloop::detail::dns_ops::bad_hostname(name));
  CHECK_FALSE(phaseloop::detail::dns_ops::bad_hostname(name + "."));
  CHECK(phaseloop::detail::dns_ops::bad_hostname(name + "a"));
  CHECK(phaseloop::detail::dns_ops::bad_hostname(name + ".."));
  CHECK(lookup(loop, name + ".invalid").first == bad);
  CHECK(lookup(loop, "127.0.0.1", {.family = 5}).first == dns::errc::bad_family);
}

TEMPLATE_TEST_CASE("dns::lookup_service reverses a loopback address", "[dns]", PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  std::optional<std::pair<std::error_code, dns::service_info>> got;
  dns::lookup_service(loop, "127.0.0.1", 22, [&](std::error_code ec, dns::service_info info) {
    got.emplace(ec, std::move(info));
  });
  loop.run();
  REQUIRE(got.has_value());
  CHECK_FALSE(got->first);
  CHECK_FALSE(got->second.hostname.empty());
  CHECK_FALSE(got->second.service.empty());  // "ssh", or "22" without /etc/services

  std::optional<std::error_code> bad;
  dns::lookup_service(loop, "localhost", 80, [&](std::error_code ec, dns::service_info) { bad = ec; });
  dns::lookup_service(loop, std::string("127.0.0.1\0", 10), 80, [&](std::error_code ec, dns::service_info) {
    CHECK(ec == dns::errc::bad_address);
  });
  loop.run();
  REQUIRE(bad.has_value());
  CHECK(*bad == dns::errc::bad_address);
}

TEMPLATE_TEST_CASE("dns.promises: lookups fulfil, bad names reject with std::system_error", "[dns]",
                   PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  std::vector<std::string> trace;
  dns::promises::lookup(loop, "127.0.0.1").then([&](addresses& a) {
    trace.push_back(a.size() == 1 && a[0].address == "127.0.0.1" ? "resolved" : "resolved?");
  });
  dns::promises::lookup(loop, "").then([&](addresses&) { trace.emplace_back("resolved ''?"); },
                                      [&](const std::system_error& e) {
                                        trace.push_back(e.code() == dns::errc::bad_hostname ? "rejected" : "rejected?");
                                      });
  dns::promises::lookup_service(loop, "127.0.0.1", 80).then([&](dns::service_info& info) {
    trace.push_back(info.hostname.empty() ? "service?" : "service");
  });
  loop.run();
  std::sort(trace.begin(), trace.end());
  CHECK(trace == std::vector<std::string>{"rejected", "resolved", "service"});
}

TEST_CASE("dns lookups are slow work: they occupy at most half of the pool", "[dns][executor]") {
  pool_loop loop(loop_options{.executor = {.threads = 2}});
  int done = 0;
  for (int i = 0; i < 20; ++i)
    dns::lookup(loop, "localhost", [&](std::error_code ec, addresses a) {
      CHECK_FALSE(ec);
      CHECK_FALSE(a.empty());
      ++done;
    });
  loop.run();
  CHECK(done == 20);
}

#endif  // !defined(_WIN32)
