#pragma once
// TCP clients: net::connect to an address, or to a host name resolved with
// dns (each address tried in turn, as Node does), with an optional connect
// timeout. Servers are net::server (net/server.hpp).
//
//   auto s = net::connect(loop, net::address::loopback_ipv4(8080));
//   s.on_connect([s]() mutable { s.write("hello"); }).on_data(...).on_error(...);
//   auto t = net::connect(loop, "example.com", 80, {.timeout = 5s});

#include <phaseloop/dns.hpp>
#include <phaseloop/net/address.hpp>
#include <phaseloop/net/server.hpp>
#include <phaseloop/net/stream.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace phaseloop::net {

/// connect()'s options.
struct connect_options {
  /// Give up (timed_out) when not connected within this time; 0: the system's limit.
  std::chrono::milliseconds timeout{0};
  /// TCP_NODELAY once connected.
  bool no_delay = false;
  /// dns: 0 (any), 4 or 6.
  int family = 0;
};

}  // namespace phaseloop::net

namespace phaseloop::detail {
/// Arm a connecting socket's timeout and remember its no-delay choice.
inline void arm_connect(stream_record& r, const net::connect_options& options) {
  if (options.timeout > std::chrono::milliseconds::zero()) {
    r.connect_timer = r.loop->set_timer(
        [ref = record_ref<stream_record>(r)] {
          auto* s = ref.get();
          if (s == nullptr || !s->connecting || s->destroyed) return;
          s->connect_timer = {};
          s->candidates.clear();
          stream_ops::fail(*s, std::make_error_code(std::errc::timed_out));
        },
        options.timeout);
  }
  r.no_delay_on_connect = options.no_delay;
}
}  // namespace phaseloop::detail

namespace phaseloop::net {

/// Connect a TCP socket (or, for a local address, a Unix domain socket) to `to`.
inline socket connect(loop_core& loop, const address& to, connect_options options = {}) {
  using phaseloop::detail::stream_ops;
  auto& r = stream_ops::make(loop, to.is_ip() ? phaseloop::detail::stream_kind::tcp : phaseloop::detail::stream_kind::local,
                             invalid_handle);
  loop.activate(r);
  r.connecting = true;
  socket s(r);
  if (to.empty()) {
    stream_ops::destroy(r, std::make_error_code(std::errc::invalid_argument));
    return s;
  }
  r.candidates.push_back(to);
  phaseloop::detail::arm_connect(r, options);
  stream_ops::connect_next(r);
  return s;
}

/// Connect to `host` (a numeric address, or a name resolved by dns::lookup,
/// each address tried in turn) on `port`.
inline socket connect(loop_core& loop, std::string host, std::uint16_t port, connect_options options = {}) {
  using phaseloop::detail::stream_ops;
  address numeric;
  if (!address::parse_ip(host, port, numeric)) return connect(loop, numeric, options);
  auto& r = stream_ops::make(loop, phaseloop::detail::stream_kind::tcp, invalid_handle);
  loop.activate(r);
  r.connecting = true;
  socket s(r);
  phaseloop::detail::arm_connect(r, options);
  struct lookup_state {
    std::string host;
    int family;
    std::vector<std::string> found;  // numeric addresses, in the resolver's order
    std::error_code error;
  };
  auto state = std::make_shared<lookup_state>(lookup_state{std::move(host), options.family, {}, {}});
  loop.queue_work(
      [state] {
        try {
#if defined(_WIN32)
          state->error = std::make_error_code(std::errc::operation_not_supported);  // no dns module yet
#else
          std::vector<dns::lookup_address> found;
          state->error = phaseloop::detail::dns_ops::do_lookup(state->host, dns::lookup_options{state->family, true, 0}, found);
          for (dns::lookup_address& a : found) state->found.push_back(std::move(a.address));
#endif
        } catch (...) {
          state->error = std::make_error_code(std::errc::not_enough_memory);
        }
      },
      [ref = record_ref<phaseloop::detail::stream_record>(r), state, port](std::error_code cancelled) {
        auto* rec = ref.get();
        if (rec == nullptr || rec->destroyed) return;
        const std::error_code ec = cancelled ? cancelled : state->error;
        if (ec) {
          stream_ops::fail(*rec, ec);
          return;
        }
        for (const std::string& ip : state->found) {
          address parsed;
          if (!address::parse_ip(ip, port, parsed)) rec->candidates.push_back(parsed);
        }
        stream_ops::connect_next(*rec);
      },
      work_kind::slow);
  return s;
}

}  // namespace phaseloop::net
