#pragma once
// What the POSIX-only suites share: a connected socket pair, a signal sent
// to this process, and a child that runs a shell script.

#include "support.hpp"

#if !defined(_WIN32)

#include <string>
#include <utility>

#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace phaseloop::test {

/// Two connected AF_UNIX stream sockets, both closed at the end.
struct unix_socket_pair {
  int fds[2] = {-1, -1};
  unix_socket_pair() { REQUIRE_FALSE(detail::posix::open_socketpair(AF_UNIX, SOCK_STREAM, fds)); }
  unix_socket_pair(const unix_socket_pair&) = delete;
  unix_socket_pair& operator=(const unix_socket_pair&) = delete;
  ~unix_socket_pair() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
  /// Writes `s` from fds[1], so that fds[0] has it to read.
  void write_peer(const std::string& s) const {
    REQUIRE(::write(fds[1], s.data(), s.size()) == static_cast<ssize_t>(s.size()));
  }
};

inline void raise_self(int signo) { REQUIRE(::kill(::getpid(), signo) == 0); }

/// Spawn options for `sh -c script`, with the default stdio.
inline child_process::spawn_options sh(std::string script) {
  child_process::spawn_options o;
  o.file = "sh";
  o.args = {"-c", std::move(script)};
  return o;
}

}  // namespace phaseloop::test

#endif  // !_WIN32
