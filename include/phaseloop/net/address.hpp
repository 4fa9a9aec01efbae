#pragma once
// net::address: a socket address (IPv4, IPv6 with its scope id, a Unix
// socket path, or a name in Linux's abstract namespace), parsed from and
// formatted as text. Malformed text is std::errc::invalid_argument, never UB.
//
//   net::address a;
//   if (auto ec = net::address::parse_ip("::1", 8080, a)) ...      // error code
//   auto b = net::address::ip("127.0.0.1", 8080);                 // throws std::system_error
//   auto c = net::address::unix_path("/run/app.sock");
//   a.to_string()  // "[::1]:8080"; "127.0.0.1:8080"; "/run/app.sock"; "@name" (abstract)

#include <phaseloop/version.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>

#if defined(_WIN32)
#include <winsock2.h>
#include <ws2tcpip.h>
#include <afunix.h>
#include <iphlpapi.h>  // if_nametoindex
#if defined(_MSC_VER)
#pragma comment(lib, "ws2_32.lib")
#pragma comment(lib, "iphlpapi.lib")
#endif
#else
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#endif

namespace phaseloop::net {

/// What an address is.
enum class address_family : std::uint8_t {
  none,   ///< empty
  ipv4,
  ipv6,
  local,  ///< a Unix domain socket (a path, or Linux's abstract namespace)
};

class address {
 public:
  address() noexcept { std::memset(&storage_, 0, sizeof storage_); }

  /// An IPv4 or IPv6 address from its numeric text ("10.0.0.1", "::1",
  /// "fe80::1%eth0" with a scope given by interface name or number) and a port.
  static std::error_code parse_ip(std::string_view text, std::uint16_t port, address& out) {
    out = address{};
    if (text.empty() || text.size() >= 64 || text.find('\0') != std::string_view::npos) return invalid();
    char buf[64];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    if (text.find(':') == std::string_view::npos) {
      sockaddr_in sin{};
      if (::inet_pton(AF_INET, buf, &sin.sin_addr) != 1) return invalid();
      sin.sin_family = AF_INET;
      sin.sin_port = htons(port);
      out.assign(&sin, sizeof sin);
      return {};
    }
    sockaddr_in6 sin6{};
    std::uint32_t scope = 0;
    if (char* percent = std::strchr(buf, '%')) {
      *percent = '\0';
      const char* zone = percent + 1;
      if (*zone == '\0') return invalid();
      if (!parse_number(zone, scope)) {
#if defined(_WIN32)
        return invalid();
#else
        scope = ::if_nametoindex(zone);
        if (scope == 0) return invalid();
#endif
      }
    }
    if (::inet_pton(AF_INET6, buf, &sin6.sin6_addr) != 1) return invalid();
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    sin6.sin6_scope_id = scope;
    out.assign(&sin6, sizeof sin6);
    return {};
  }

  /// "host:port" text: "127.0.0.1:80", "[::1]:80", "[fe80::1%2]:80"; a path
  /// ("/run/x.sock", "./x.sock") or "@name" (abstract) for local sockets.
  static std::error_code parse(std::string_view text, address& out) {
    out = address{};
    if (text.empty()) return invalid();
    if (text.front() == '/' || text.front() == '.') return parse_unix_path(text, out);
    if (text.front() == '@') return parse_abstract(text.substr(1), out);
    std::string_view host;
    std::string_view port_text;
    if (text.front() == '[') {
      const std::size_t close = text.find(']');
      if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return invalid();
      host = text.substr(1, close - 1);
      port_text = text.substr(close + 2);
    } else {
      const std::size_t colon = text.rfind(':');
      if (colon == std::string_view::npos || text.find(':') != colon) return invalid();
      host = text.substr(0, colon);
      port_text = text.substr(colon + 1);
    }
    std::uint32_t port = 0;
    if (port_text.empty() || port_text.size() > 5) return invalid();
    std::string digits(port_text);
    if (!parse_number(digits.c_str(), port) || port > 65535) return invalid();
    return parse_ip(host, static_cast<std::uint16_t>(port), out);
  }

  /// A Unix domain socket path; ENAMETOOLONG when it does not fit sun_path.
  static std::error_code parse_unix_path(std::string_view path, address& out) {
    out = address{};
    sockaddr_un sun{};
    if (path.empty() || path.find('\0') != std::string_view::npos) return invalid();
    if (path.size() >= sizeof sun.sun_path) return std::make_error_code(std::errc::filename_too_long);
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.data(), path.size());
    out.assign(&sun, static_cast<std::uint32_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1));
    return {};
  }

  /// A name in Linux's abstract socket namespace (no file; "@name" in text).
  static std::error_code parse_abstract(std::string_view name, address& out) {
    out = address{};
#if defined(__linux__)
    sockaddr_un sun{};
    if (name.size() + 1 > sizeof sun.sun_path) return std::make_error_code(std::errc::filename_too_long);
    sun.sun_family = AF_UNIX;
    sun.sun_path[0] = '\0';
    std::memcpy(sun.sun_path + 1, name.data(), name.size());
    out.assign(&sun, static_cast<std::uint32_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size()));
    return {};
#else
    (void)name;
    return std::make_error_code(std::errc::address_family_not_supported);
#endif
  }

  /// As parse_ip, throwing std::system_error for malformed text.
  static address ip(std::string_view text, std::uint16_t port) { return checked(parse_ip(text, port, scratch())); }
  /// As parse_unix_path, throwing std::system_error.
  static address unix_path(std::string_view path) { return checked(parse_unix_path(path, scratch())); }
  /// As parse_abstract, throwing std::system_error.
  static address abstract(std::string_view name) { return checked(parse_abstract(name, scratch())); }
  /// 0.0.0.0:port (every IPv4 interface).
  static address any_ipv4(std::uint16_t port = 0) { return ip("0.0.0.0", port); }
  /// 127.0.0.1:port.
  static address loopback_ipv4(std::uint16_t port = 0) { return ip("127.0.0.1", port); }
  /// [::]:port.
  static address any_ipv6(std::uint16_t port = 0) { return ip("::", port); }
  /// [::1]:port.
  static address loopback_ipv6(std::uint16_t port = 0) { return ip("::1", port); }

  /// An address from raw sockaddr bytes (as the system reports them); an
  /// unknown family or a length that does not fit gives an empty address.
  static address from_raw(const void* data, std::uint32_t length) noexcept {
    address a;
    if (length < sizeof(decltype(sockaddr::sa_family)) || length > sizeof a.storage_) return a;
    a.assign(data, length);
    if (a.family() == address_family::none) a = address{};
    return a;
  }

  [[nodiscard]] address_family family() const noexcept {
    if (length_ == 0) return address_family::none;
    switch (storage_.ss_family) {
      case AF_INET: return address_family::ipv4;
      case AF_INET6: return address_family::ipv6;
      case AF_UNIX: return address_family::local;
      default: return address_family::none;
    }
  }
  [[nodiscard]] bool empty() const noexcept { return family() == address_family::none; }
  [[nodiscard]] bool is_ip() const noexcept {
    return family() == address_family::ipv4 || family() == address_family::ipv6;
  }

  /// The port of an IP address (0 otherwise).
  [[nodiscard]] std::uint16_t port() const noexcept {
    if (family() == address_family::ipv4) return ntohs(as<sockaddr_in>().sin_port);
    if (family() == address_family::ipv6) return ntohs(as<sockaddr_in6>().sin6_port);
    return 0;
  }
  /// The same address with another port (IP addresses only).
  [[nodiscard]] address with_port(std::uint16_t port) const noexcept {
    address a = *this;
    if (family() == address_family::ipv4) a.as<sockaddr_in>().sin_port = htons(port);
    if (family() == address_family::ipv6) a.as<sockaddr_in6>().sin6_port = htons(port);
    return a;
  }
  /// An IPv6 address's scope id (0 otherwise).
  [[nodiscard]] std::uint32_t scope_id() const noexcept {
    return family() == address_family::ipv6 ? as<sockaddr_in6>().sin6_scope_id : 0;
  }
  /// The numeric IP text ("127.0.0.1", "fe80::1%2"), or "" for other families.
  [[nodiscard]] std::string ip_text() const {
    char text[INET6_ADDRSTRLEN + 16] = {};
    if (family() == address_family::ipv4) {
      ::inet_ntop(AF_INET, &as<sockaddr_in>().sin_addr, text, sizeof text);
      return text;
    }
    if (family() == address_family::ipv6) {
      ::inet_ntop(AF_INET6, &as<sockaddr_in6>().sin6_addr, text, INET6_ADDRSTRLEN);
      std::string out = text;
      if (scope_id() != 0) out += "%" + std::to_string(scope_id());
      return out;
    }
    return {};
  }
  /// A Unix socket's path ("" when unnamed; abstract names without the leading NUL).
  [[nodiscard]] std::string path() const {
    if (family() != address_family::local) return {};
    const auto& sun = as<sockaddr_un>();
    const std::size_t max = length_ > offsetof(sockaddr_un, sun_path) ? length_ - offsetof(sockaddr_un, sun_path) : 0;
    if (max == 0) return {};
    if (sun.sun_path[0] == '\0') return std::string(sun.sun_path + 1, max - 1);
    return std::string(sun.sun_path, ::strnlen(sun.sun_path, max));
  }
  /// Whether a local address is in Linux's abstract namespace.
  [[nodiscard]] bool is_abstract() const noexcept {
    return family() == address_family::local && length_ > offsetof(sockaddr_un, sun_path) &&
           as<sockaddr_un>().sun_path[0] == '\0';
  }

  /// "127.0.0.1:80", "[::1]:80", "/path", "@name"; "" when empty.
  [[nodiscard]] std::string to_string() const {
    switch (family()) {
      case address_family::ipv4: return ip_text() + ":" + std::to_string(port());
      case address_family::ipv6: return "[" + ip_text() + "]:" + std::to_string(port());
      case address_family::local: return is_abstract() ? "@" + path() : path();
      case address_family::none: break;
    }
    return {};
  }

  /// The raw sockaddr, for system calls.
  [[nodiscard]] const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  [[nodiscard]] sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  /// Bytes of the sockaddr in use.
  [[nodiscard]] std::uint32_t size() const noexcept { return length_; }
  /// Bytes available for a sockaddr the system fills in.
  static constexpr std::uint32_t capacity() noexcept { return sizeof(sockaddr_storage); }
  /// After the system filled data(): how many bytes it used.
  void set_size(std::uint32_t length) noexcept { length_ = length <= capacity() ? length : 0; }
  /// The socket family constant (AF_INET, AF_INET6, AF_UNIX), 0 when empty.
  [[nodiscard]] int native_family() const noexcept { return length_ != 0 ? storage_.ss_family : 0; }

  friend bool operator==(const address& a, const address& b) noexcept {
    return a.length_ == b.length_ && std::memcmp(&a.storage_, &b.storage_, a.length_) == 0;
  }

 private:
  static std::error_code invalid() noexcept { return std::make_error_code(std::errc::invalid_argument); }
  static address& scratch() {
    static thread_local address a;
    return a;
  }
  static address checked(std::error_code ec) {
    if (ec) throw std::system_error(ec, "phaseloop::net::address");
    return scratch();
  }
  static bool parse_number(const char* text, std::uint32_t& out) noexcept {
    if (*text == '\0') return false;
    std::uint64_t v = 0;
    for (const char* p = text; *p != '\0'; ++p) {
      if (*p < '0' || *p > '9') return false;
      v = v * 10 + static_cast<std::uint64_t>(*p - '0');
      if (v > 0xffffffffu) return false;
    }
    out = static_cast<std::uint32_t>(v);
    return true;
  }
  template <class T>
  [[nodiscard]] const T& as() const noexcept {
    return *reinterpret_cast<const T*>(&storage_);
  }
  template <class T>
  [[nodiscard]] T& as() noexcept {
    return *reinterpret_cast<T*>(&storage_);
  }
  void assign(const void* data, std::uint32_t length) noexcept {
    std::memset(&storage_, 0, sizeof storage_);
    std::memcpy(&storage_, data, length);
    length_ = length;
  }

  sockaddr_storage storage_;
  std::uint32_t length_ = 0;
};

}  // namespace phaseloop::net
