#pragma once
// Starting a child process (POSIX), for child_process.hpp: vfork (Linux) or
// fork, with everything the child needs built by the parent first, so the
// child only makes system calls; an error pipe tells the parent why exec
// failed. Child exit is noticed through a pidfd where the kernel has them.

#if !defined(_WIN32)

#include <phaseloop/detail/posix/system.hpp>

#include <cerrno>
#include <cstddef>
#include <system_error>

#include <fcntl.h>
#if !defined(__linux__)
#include <grp.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace phaseloop::detail::posix {

/// What the child does between fork and exec, all prepared by the parent.
struct spawn_plan {
  const char* const* candidates = nullptr;  ///< the paths to try, in order (PATH search done)
  std::size_t candidate_count = 0;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;  ///< null: the parent's
  int* sources = nullptr;     ///< per child descriptor 0..count-1: the parent's descriptor it gets
  int count = 0;
  int error_fd = -1;          ///< the error pipe's write end (close-on-exec)
  int close_limit = 1024;     ///< where closing stray descriptors stops without close_range
  bool detached = false;
  bool set_uid = false;
  bool set_gid = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

[[noreturn]] inline void spawn_fail(int fd, int e) noexcept {
  while (::write(fd, &e, sizeof e) < 0 && errno == EINTR) {
  }
  ::_exit(127);
}

// Close descriptors first..last (close_range where the kernel has it).
inline void close_span(unsigned first, unsigned last, int limit) noexcept {
  if (first > last) return;
#if defined(SYS_close_range)
  if (::syscall(SYS_close_range, first, last, 0u) == 0) return;
#endif
  for (unsigned fd = first; fd <= last && fd < static_cast<unsigned>(limit); ++fd) (void)::close(static_cast<int>(fd));
}

/// The child's side: system calls only (no allocation, no lock), then exec.
[[noreturn]] inline void spawn_child(const spawn_plan& p) noexcept {
  // Default dispositions (the parent blocked every signal around the fork).
  struct sigaction dfl {};
#if defined(__clang__)
#pragma clang diagnostic push
// glibc's sa_handler is a macro naming a union member of the same name.
#pragma clang diagnostic ignored "-Wdisabled-macro-expansion"
#endif
  dfl.sa_handler = SIG_DFL;
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
  for (int s = 1; s < NSIG; ++s)
    if (s != SIGKILL && s != SIGSTOP) (void)::sigaction(s, &dfl, nullptr);
  int err = p.error_fd;
  if (p.detached && ::setsid() < 0) spawn_fail(err, errno);
  const int n = p.count;
  // Nothing the child keeps may lie where a dup2 lands: move it up first.
  if (err < n) {
    err = ::fcntl(err, F_DUPFD_CLOEXEC, n);
    if (err < 0) ::_exit(127);
  }
  for (int i = 0; i < n; ++i) {
    const int fd = p.sources[i];
    if (fd >= 0 && fd < n && fd != i) {
      p.sources[i] = ::fcntl(fd, F_DUPFD_CLOEXEC, n);
      if (p.sources[i] < 0) spawn_fail(err, errno);
    }
  }
  for (int i = 0; i < n; ++i) {
    const int fd = p.sources[i];
    if (fd == i) {
      (void)::fcntl(i, F_SETFD, 0);  // inherited as it is (not open: stays closed)
    } else if (fd >= 0) {
      if (::dup2(fd, i) < 0) spawn_fail(err, errno);
    } else {
      (void)::close(i);
    }
  }
  // No stray descriptor crosses exec, close-on-exec or not; the error pipe stays until exec.
  if (err > n) close_span(static_cast<unsigned>(n), static_cast<unsigned>(err - 1), p.close_limit);
  close_span(static_cast<unsigned>(err + 1), ~0u, p.close_limit);
  if (p.cwd != nullptr && ::chdir(p.cwd) != 0) spawn_fail(err, errno);
  // Privileges: groups, then group, then user (raw calls: only this process changes).
#if defined(__linux__)
  if (p.set_uid || p.set_gid) (void)::syscall(SYS_setgroups, 0, nullptr);
#if defined(SYS_setgid32)
  if (p.set_gid && ::syscall(SYS_setgid32, p.gid) != 0) spawn_fail(err, errno);
  if (p.set_uid && ::syscall(SYS_setuid32, p.uid) != 0) spawn_fail(err, errno);
#else
  if (p.set_gid && ::syscall(SYS_setgid, p.gid) != 0) spawn_fail(err, errno);
  if (p.set_uid && ::syscall(SYS_setuid, p.uid) != 0) spawn_fail(err, errno);
#endif
#else
  if (p.set_uid || p.set_gid) (void)::setgroups(0, nullptr);
  if (p.set_gid && ::setgid(p.gid) != 0) spawn_fail(err, errno);
  if (p.set_uid && ::setuid(p.uid) != 0) spawn_fail(err, errno);
#endif
  sigset_t none;
  sigemptyset(&none);
  (void)::sigprocmask(SIG_SETMASK, &none, nullptr);
  int e = ENOENT;
  bool denied = false;
  for (std::size_t i = 0; i < p.candidate_count; ++i) {
    ::execve(p.candidates[i], p.argv, p.envp);
    e = errno;
    if (e == EACCES) {
      denied = true;
    } else if (e != ENOENT && e != ENOTDIR) {
      break;  // as execvp: a file that exists but cannot run ends the search
    }
  }
  spawn_fail(err, denied && (e == ENOENT || e == ENOTDIR) ? EACCES : e);
}

// The fork itself, kept apart so nothing of the caller's frame is live across
// it (vfork returns twice on one stack).
#if defined(__GNUC__)
__attribute__((noinline))
#endif
inline pid_t spawn_fork(const spawn_plan& p) noexcept {
#if defined(__linux__)
  const pid_t pid = ::vfork();
#else
  const pid_t pid = ::fork();
#endif
  if (pid == 0) spawn_child(p);
  return pid;
}

/// Start the child: its pid, or an error (the child's exec error, reaped).
inline std::error_code spawn_process(spawn_plan& p, pid_t& pid) noexcept {
  int ep[2];
#if defined(__linux__)
  if (::pipe2(ep, O_CLOEXEC) != 0) return errno_code();
#else
  if (::pipe(ep) != 0) return errno_code();
  (void)::fcntl(ep[0], F_SETFD, FD_CLOEXEC);
  (void)::fcntl(ep[1], F_SETFD, FD_CLOEXEC);
#endif
  p.error_fd = ep[1];
  sigset_t all, old;
  sigfillset(&all);
  // No handler of the parent may run in the child while it shares memory.
  (void)::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid = spawn_fork(p);
  const int fork_errno = errno;
  (void)::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  (void)close_fd(ep[1]);
  if (pid < 0) {
    (void)close_fd(ep[0]);
    return errno_code(fork_errno);
  }
  int child_errno = 0;
  const ssize_t n = retry([&] { return ::read(ep[0], &child_errno, sizeof child_errno); });
  (void)close_fd(ep[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int status = 0;
    (void)retry([&] { return ::waitpid(pid, &status, 0); });  // no zombie is left
    pid = 0;
    return errno_code(child_errno);
  }
  return {};
}

/// A pidfd for `pid` (Linux 5.3+), or -1 where the kernel or a seccomp filter refuses.
inline int open_pidfd(pid_t pid) noexcept {
#if defined(__linux__) && defined(SYS_pidfd_open)
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return -1;
  (void)::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  return static_cast<int>(fd);
#else
  (void)pid;
  return -1;
#endif
}

/// Send `signo` to a child not yet reaped (through its pidfd when it has one).
inline std::error_code signal_child(pid_t pid, int pidfd, int signo) noexcept {
#if defined(__linux__) && defined(SYS_pidfd_send_signal)
  if (pidfd >= 0) {
    if (::syscall(SYS_pidfd_send_signal, pidfd, signo, nullptr, 0u) == 0) return {};
    if (errno != ENOSYS) return errno_code();
  }
#else
  (void)pidfd;
#endif
  if (::kill(pid, signo) != 0) return errno_code();
  return {};
}

}  // namespace phaseloop::detail::posix

#endif  // !_WIN32
