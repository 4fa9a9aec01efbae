#pragma once
// phaseloop::dns: Node's dns.lookup and dns.lookupService, on the loop's
// executor through getaddrinfo/getnameinfo (the system resolver: /etc/hosts,
// nsswitch), as libuv and Node do. Lookups are work_kind::slow, so they never
// occupy more than half of a thread pool and cannot starve file operations.
//
// Callbacks are err-first and run on the loop thread in the poll phase:
//   lookup:         cb(std::error_code, std::vector<dns::lookup_address>)
//   lookup_service: cb(std::error_code, dns::service_info)
// Resolver failures are dns::errc codes (not_found is Node's ENOTFOUND);
// a hostname that is empty, longer than 253 characters (a trailing dot not
// counted) or contains a NUL gives dns::errc::bad_hostname, without calling
// the resolver: names are never truncated.
//
// Promise forms (Node's dns.promises): dns::promises::lookup(loop, host,
// options) -> promise<std::vector<lookup_address>> and
// dns::promises::lookup_service(loop, ip, port) -> promise<service_info>;
// they reject with std::system_error(ec).
//
// POSIX only for now: on Windows this header declares nothing.

#include <phaseloop/version.hpp>
#include <phaseloop/error.hpp>

#if !defined(_WIN32)

#include <phaseloop/detail/blocking_call.hpp>
#include <phaseloop/inbox.hpp>
#include <phaseloop/promise.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace phaseloop::dns {

/// Resolver errors, named after Node's dns error codes.
enum class errc {
  bad_hostname = 1,  ///< empty, longer than 253 characters, or containing a NUL
  bad_address,       ///< lookup_service: not a numeric IPv4 or IPv6 address
  bad_family,        ///< lookup: family is not 0, 4 or 6 (EBADFAMILY)
  not_found,         ///< ENOTFOUND: the name does not resolve (EAI_NONAME)
  no_data,           ///< ENODATA: the name has no address of the requested kind
  try_again,         ///< EAI_AGAIN: temporary failure, try again later
  failure,           ///< EAI_FAIL: non-recoverable resolver failure
  bad_flags,         ///< EAI_BADFLAGS: invalid hints
  unsupported,       ///< EAI_FAMILY / EAI_SOCKTYPE / EAI_SERVICE: not supported
  overflow,          ///< EAI_OVERFLOW: a result did not fit
};

// clang's -Wweak-vtables cannot be met by a header-only library: no source
// file can hold an out-of-line virtual function, so every translation unit
// emits the vtable (the linker keeps one). Silenced for this class alone.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wweak-vtables"
#endif
class error_category final : public std::error_category {
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
 public:
  [[nodiscard]] const char* name() const noexcept override { return "phaseloop.dns"; }
  [[nodiscard]] std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::bad_hostname:
        return "invalid hostname: empty, longer than 253 characters, or containing a NUL";
      case errc::bad_address: return "not a numeric IPv4 or IPv6 address";
      case errc::bad_family: return "address family must be 0, 4 or 6";
      case errc::not_found: return "ENOTFOUND: name not found";
      case errc::no_data: return "ENODATA: no address for the name";
      case errc::try_again: return "EAI_AGAIN: temporary resolver failure";
      case errc::failure: return "EAI_FAIL: non-recoverable resolver failure";
      case errc::bad_flags: return "EAI_BADFLAGS: invalid lookup hints";
      case errc::unsupported: return "address family, socket type or service not supported";
      case errc::overflow: return "EAI_OVERFLOW: resolver result too long";
    }
    return "unknown resolver error";
  }
};

inline const std::error_category& category() noexcept {
  return phaseloop::detail::immortal<error_category>();
}

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

}  // namespace phaseloop::dns

// A std trait specialization, not phaseloop API: out of the reference.
/// \cond
template <>
struct std::is_error_code_enum<phaseloop::dns::errc> : std::true_type {};
/// \endcond

namespace phaseloop::dns {

/// One resolved address, as Node reports it.
struct lookup_address {
  std::string address;  ///< numeric form: "127.0.0.1", "::1"
  int family = 0;       ///< 4 or 6
  friend bool operator==(const lookup_address&, const lookup_address&) = default;
};

/// Node's dns.lookup options.
struct lookup_options {
  int family = 0;     ///< 0 (any), 4 or 6
  bool all = false;   ///< every address instead of the first
  int hints = 0;      ///< getaddrinfo flags, e.g. AI_ADDRCONFIG
};

/// What lookup_service reports (Node's { hostname, service }).
struct service_info {
  std::string hostname;
  std::string service;
};

}  // namespace phaseloop::dns

namespace phaseloop::detail::dns_ops {

using dns::errc;
using dns::lookup_address;
using dns::lookup_options;
using dns::service_info;

inline std::error_code from_gai(int code, int saved_errno) noexcept {
  switch (code) {
    case 0: return {};
    case EAI_NONAME: return make_error_code(errc::not_found);
#if defined(EAI_NODATA) && EAI_NODATA != EAI_NONAME
    case EAI_NODATA: return make_error_code(errc::no_data);
#endif
#if defined(EAI_ADDRFAMILY)
    case EAI_ADDRFAMILY: return make_error_code(errc::no_data);
#endif
    case EAI_AGAIN: return make_error_code(errc::try_again);
    case EAI_FAIL: return make_error_code(errc::failure);
    case EAI_BADFLAGS: return make_error_code(errc::bad_flags);
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_SERVICE: return make_error_code(errc::unsupported);
    case EAI_MEMORY: return std::make_error_code(std::errc::not_enough_memory);
#if defined(EAI_OVERFLOW)
    case EAI_OVERFLOW: return make_error_code(errc::overflow);
#endif
    case EAI_SYSTEM:
      return saved_errno != 0 ? std::error_code(saved_errno, std::system_category())
                              : make_error_code(errc::failure);
    default: return make_error_code(errc::failure);
  }
}

/// Empty, longer than 253 characters (one trailing dot not counted), or with a NUL.
inline bool bad_hostname(const std::string& host) noexcept {
  if (host.empty() || host.find('\0') != std::string::npos) return true;
  std::size_t length = host.size();
  if (host.back() == '.') --length;
  return length == 0 || length > 253;
}

inline std::error_code do_lookup(const std::string& host, const lookup_options& options,
                                 std::vector<dns::lookup_address>& out) {
  if (bad_hostname(host)) return make_error_code(errc::bad_hostname);
  struct addrinfo hints{};
  hints.ai_family = options.family == 4 ? AF_INET : options.family == 6 ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;  // one entry per address
  hints.ai_flags = options.hints;
  struct addrinfo* result = nullptr;
  errno = 0;
  const int code = ::getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (code != 0) return from_gai(code, errno);
  struct releaser {
    struct addrinfo* list;
    ~releaser() { ::freeaddrinfo(list); }
  } guard{result};
  for (const struct addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    dns::lookup_address a;
    if (ai->ai_family == AF_INET) {
      const auto* sin = reinterpret_cast<const struct sockaddr_in*>(ai->ai_addr);
      if (::inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text) == nullptr) continue;
      a.family = 4;
    } else if (ai->ai_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const struct sockaddr_in6*>(ai->ai_addr);
      if (::inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text) == nullptr) continue;
      a.family = 6;
    } else {
      continue;
    }
    a.address = text;
    bool seen = false;
    for (const dns::lookup_address& b : out) seen = seen || b == a;
    if (seen) continue;
    out.push_back(std::move(a));
    if (!options.all) break;
  }
  if (out.empty()) return make_error_code(errc::not_found);
  return {};
}

inline std::error_code do_lookup_service(const std::string& ip, std::uint16_t port,
                                         service_info& out) {
  struct sockaddr_storage storage{};
  socklen_t length = 0;
  if (ip.find('\0') != std::string::npos) return make_error_code(errc::bad_address);
  auto* sin = reinterpret_cast<struct sockaddr_in*>(&storage);
  auto* sin6 = reinterpret_cast<struct sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET, ip.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    length = sizeof(struct sockaddr_in);
  } else if (::inet_pton(AF_INET6, ip.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    length = sizeof(struct sockaddr_in6);
  } else {
    return make_error_code(errc::bad_address);
  }
  // NI_MAXHOST and NI_MAXSERV bound what getnameinfo can return at all.
  char host[1025] = {};
  char service[32] = {};
  errno = 0;
  const int code = ::getnameinfo(reinterpret_cast<const struct sockaddr*>(&storage), length, host,
                                 sizeof host, service, sizeof service, NI_NAMEREQD);
  if (code != 0) return from_gai(code, errno);
  out.hostname = host;
  out.service = service;
  return {};
}

}  // namespace phaseloop::detail::dns_ops

namespace phaseloop::dns {

/// Resolve `host` with the system resolver. cb(std::error_code,
/// std::vector<dns::lookup_address>): the first address, or every distinct address
/// with options.all, in the resolver's order.
template <class Loop, class Cb>
auto lookup(Loop& loop, std::string host, lookup_options options, Cb cb) {
  static_assert(std::is_invocable_v<Cb&, std::error_code, std::vector<lookup_address>> ||
                    phaseloop::detail::is_promise_token<Cb>,
                "dns::lookup: the callback must accept (std::error_code, std::vector<dns::lookup_address>), "
                "or be phaseloop::use_promise");
  return phaseloop::detail::queue_blocking<std::vector<lookup_address>>(
      loop, work_kind::slow,
      [host = std::move(host), options](std::vector<lookup_address>& out) -> std::error_code {
        if (options.family != 0 && options.family != 4 && options.family != 6)
          return make_error_code(errc::bad_family);
        return phaseloop::detail::dns_ops::do_lookup(host, options, out);
      },
      std::move(cb));
}

template <class Loop, class Cb>
auto lookup(Loop& loop, std::string host, Cb cb) {
  return dns::lookup(loop, std::move(host), lookup_options{}, std::move(cb));
}

/// The host name and service for a numeric address and port (reverse
/// lookup). cb(std::error_code, dns::service_info).
template <class Loop, class Cb>
auto lookup_service(Loop& loop, std::string ip, std::uint16_t port, Cb cb) {
  static_assert(std::is_invocable_v<Cb&, std::error_code, service_info> || phaseloop::detail::is_promise_token<Cb>,
                "dns::lookup_service: the callback must accept (std::error_code, dns::service_info), "
                "or be phaseloop::use_promise");
  return phaseloop::detail::queue_blocking<service_info>(
      loop, work_kind::slow,
      [ip = std::move(ip), port](service_info& out) {
        return phaseloop::detail::dns_ops::do_lookup_service(ip, port, out);
      },
      std::move(cb));
}

/// Node's dns.promises: the callback forms with the use_promise token, which
/// also takes a cancellation signal (dns::lookup(loop, host, use_promise(signal))).
namespace promises {

template <class Loop>
promise<std::vector<lookup_address>> lookup(Loop& loop, std::string host, lookup_options options = {}) {
  return dns::lookup(loop, std::move(host), options, phaseloop::use_promise);
}

template <class Loop>
promise<service_info> lookup_service(Loop& loop, std::string ip, std::uint16_t port) {
  return dns::lookup_service(loop, std::move(ip), port, phaseloop::use_promise);
}

}  // namespace promises

}  // namespace phaseloop::dns

#endif  // !defined(_WIN32)
