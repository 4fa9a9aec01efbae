#pragma once
// child_process (POSIX): Node's child_process.spawn, exec and execFile.
//
//   child_process::spawn_options o;
//   o.file = "sh";
//   o.args = {"-c", "echo hi; exit 3"};
//   auto c = child_process::spawn(loop, o);
//   c.stdout_pipe().on_data([](std::span<const std::byte> d) { ... });
//   c.on_exit([](int code, int signo) { ... });   // code -1 when a signal ended it
//   c.on_close([](int code, int signo) { ... });  // after exit and every stdio pipe closed
//   c.kill(SIGTERM);
//
// A child lives until 'close', as in Node: the loop owns it and
// child_process::child is a small copyable reference to it (safe once it is
// gone: calls do nothing). It keeps the loop alive until it exits (unref()
// stops that); its stdio pipes are net::socket streams (data/end/close,
// write/end, pause/resume backpressure) that hold the loop while open.
//
// A spawn failure (ENOENT, EACCES, EPERM, a bad cwd, EMFILE) is 'error' in a
// tick, then 'close' with code -errno; the form with an error_code out
// parameter reports it at once instead. The child gets default signal
// dispositions, an empty signal mask, exactly the descriptors in `stdio`
// (every other one is closed before exec), and drops privileges setgroups,
// setgid, setuid. It starts with vfork and an error pipe (no thread pool
// involved). Its exit is noticed through a pidfd where the kernel has them,
// otherwise by SIGCHLD and waitpid for each of the loop's own children, so
// other libraries' children are never reaped.
//
// On Windows this module is not available yet (the API is omitted).

#include <phaseloop/error.hpp>
#include <phaseloop/handle.hpp>
#include <phaseloop/loop_core.hpp>
#include <phaseloop/net/stream.hpp>
#include <phaseloop/operation.hpp>
#include <phaseloop/promise.hpp>
#include <phaseloop/signal.hpp>
#include <phaseloop/detail/posix/spawn.hpp>
#include <phaseloop/detail/posix/system.hpp>

#if !defined(_WIN32)

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern "C" {
extern char** environ;  // NOLINT: POSIX declares it nowhere else
}

namespace phaseloop {
namespace child_process {

/// What one of the child's descriptors is connected to.
enum class stdio_kind : std::uint8_t {
  pipe,     ///< a stream socket pair: the parent's end is a net::socket
  inherit,  ///< the parent's descriptor of the same number
  ignore,   ///< /dev/null
  fd,       ///< a descriptor of the parent's (`fd`)
};

/// One entry of spawn_options::stdio (index = the child's descriptor number).
struct stdio_spec {
  stdio_kind kind = stdio_kind::pipe;
  native_handle fd = invalid_handle;  ///< for stdio_kind::fd
  static stdio_spec pipe() noexcept { return {stdio_kind::pipe, invalid_handle}; }
  static stdio_spec inherit() noexcept { return {stdio_kind::inherit, invalid_handle}; }
  static stdio_spec ignore() noexcept { return {stdio_kind::ignore, invalid_handle}; }
  static stdio_spec from_fd(native_handle fd) noexcept { return {stdio_kind::fd, fd}; }
};

/// Node's spawn(command, args, options).
struct spawn_options {
  std::string file;               ///< the program; searched in PATH when it has no '/'
  std::vector<std::string> args;  ///< argv[1..] (argv[0] is `file`)
  std::optional<std::vector<std::string>> env;  ///< "NAME=value" entries; none: the parent's environment
  std::string cwd;                ///< empty: the parent's
  /// The child's descriptors 0, 1, 2, ...; fewer than three: the rest ignored.
  std::vector<stdio_spec> stdio{stdio_spec::pipe(), stdio_spec::pipe(), stdio_spec::pipe()};
  bool detached = false;          ///< a new session (setsid): not killed with the parent's group
  std::optional<std::uint32_t> uid;  ///< setuid before exec
  std::optional<std::uint32_t> gid;  ///< setgid before exec
};

}  // namespace child_process

namespace detail {

/// For tests: notice exits by SIGCHLD and waitpid even where pidfds work.
inline std::atomic<bool> child_force_sigchld{false};

struct child_record;

/// Per loop: the children waiting for SIGCHLD (where there are no pidfds).
struct child_service {
  explicit child_service(loop_core& l) : loop(l) {}
  child_service(const child_service&) = delete;
  child_service& operator=(const child_service&) = delete;
  inline ~child_service();

  inline std::error_code watch_sigchld();
  inline void on_sigchld();

  loop_core& loop;
  signal_handle sigchld;
  std::vector<record_ref<child_record>> waiting;
  std::vector<record_ref<child_record>> snapshot;
};

struct child_record : handle_record {
  pid_t pid = 0;
  int pidfd = -1;
  operation exit_op;
  int exit_code = 0;
  int term_signal = 0;
  bool exited = false;         // reaped
  bool exit_reported = false;  // 'exit' emitted
  bool close_emitted = false;
  bool by_sigchld = false;
  std::error_code spawn_error;
  std::vector<record_ref<stream_record>> pipes;  // per child descriptor (empty: not a pipe)
  std::uint32_t open_pipes = 0;
  unique_function<void(int, int)> on_exit;
  unique_function<void(int, int)> on_close;
  unique_function<void(std::error_code)> on_error;

  child_record() = default;
  ~child_record() {
    // The loop's teardown (or after 'close'): give the pidfd back.
    if (pidfd >= 0 && loop != nullptr) (void)loop->close_descriptor(std::exchange(pidfd, -1));
  }
};

struct child_ops {
  // A pipe of the child closed (its 'close' runs right after this).
  static void pipe_released(handle_record& base) {
    auto& r = static_cast<child_record&>(base);
    if (r.open_pipes > 0) --r.open_pipes;
    if (r.open_pipes == 0 && (r.exit_reported || r.spawn_error)) {
      r.loop->next_tick([ref = record_ref<child_record>(r)] {
        if (child_record* c = ref.get()) emit_close(*c);
      });
    }
  }

  static void emit_close(child_record& r) {
    if (r.close_emitted || r.open_pipes != 0 || !(r.exit_reported || r.spawn_error)) return;
    r.close_emitted = true;
    auto fn = std::move(r.on_close);
    const int code = r.exit_code;
    const int sig = r.term_signal;
    loop_core& loop = *r.loop;
    loop.close_handle(r, {});
    if (fn) loop.invoke(fn, code, sig);
  }

  static void pidfd_ready(operation& op) {
    auto& r = *static_cast<child_record*>(op.user);
    if (r.exited) return;
    if (!op.more() && op.error == std::errc::operation_canceled) return;
    try_reap(r);
  }

  /// waitpid for this one child; true when it has exited.
  static bool try_reap(child_record& r) {
    if (r.exited || r.pid <= 0) return r.exited;
    int status = 0;
    const pid_t got = posix::retry([&] { return ::waitpid(r.pid, &status, WNOHANG); });
    if (got == 0) return false;
    if (got < 0) {
      // ECHILD: someone else reaped it (SIGCHLD ignored): its status is lost.
      r.exit_code = -1;
      r.term_signal = 0;
    } else if (WIFEXITED(status)) {
      r.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      r.exit_code = -1;
      r.term_signal = WTERMSIG(status);
    } else {
      return false;  // stopped or continued: not an exit
    }
    exited(r);
    return true;
  }

  static void exited(child_record& r) {
    r.exited = true;
    loop_core& loop = *r.loop;
    loop.deactivate(r);
    if (r.pidfd >= 0) {
      loop.cancel(r.exit_op);
      (void)loop.close_descriptor(std::exchange(r.pidfd, -1));
    }
    report_exit(r, 0);
  }

  // Output the child wrote before it exited and that waits unread in a
  // flowing pipe: read first (the poll phase that reports the exit may come
  // before the one that reads it).
  static bool output_pending(const child_record& r) noexcept {
    for (const auto& ref : r.pipes) {
      const stream_record* s = ref.get();
      if (s == nullptr || s->destroyed || s->read_ended || !s->reading || s->fd < 0) continue;
      if (s->read_op.linked) return true;  // read by the backend, its completion queued behind ours
      int n = 0;
      if (::ioctl(static_cast<int>(s->fd), FIONREAD, &n) == 0 && n > 0) return true;
    }
    return false;
  }

  // 'exit', once the output written before it has been read (a few turns at most).
  static void report_exit(child_record& r, int turns) {
    if (turns < 16 && output_pending(r)) {
      r.loop->defer([ref = record_ref<child_record>(r), turns] {
        if (child_record* c = ref.get()) report_exit(*c, turns + 1);
      });
      return;
    }
    r.exit_reported = true;
    const record_ref<child_record> ref(r);
    if (r.on_exit) {
      auto fn = std::move(r.on_exit);
      r.loop->invoke(fn, r.exit_code, r.term_signal);
      r.loop->run_microtasks();
    }
    if (child_record* c = ref.get()) emit_close(*c);
  }

  static void stop(handle_record& base) {
    auto& r = static_cast<child_record&>(base);
    r.loop->cancel(r.exit_op);
  }
};

inline child_service::~child_service() = default;

inline std::error_code child_service::watch_sigchld() {
  if (sigchld.active()) return {};
  if (!sigchld) sigchld = signal_handle(loop);
  if (std::error_code ec = sigchld.start(SIGCHLD, [this](int) { on_sigchld(); })) return ec;
  sigchld.unref();  // the children hold the loop, not this watch
  return {};
}

inline void child_service::on_sigchld() {
  snapshot.swap(waiting);
  waiting.clear();
  for (auto& ref : snapshot) {
    child_record* r = ref.get();
    if (r == nullptr || r->exited) continue;
    if (!child_ops::try_reap(*r)) waiting.push_back(ref);
  }
  snapshot.clear();
  if (waiting.empty()) sigchld.stop();  // the default disposition comes back when nobody waits
}

}  // namespace detail

namespace child_process {

/// A running (or finished) child: a reference to the loop's record of it.
class child {
 public:
  child() noexcept = default;
  /// Whether it refers to a child not yet closed.
  explicit operator bool() const noexcept { return ref_.get() != nullptr; }

  /// exit(code, signal): code is the exit status, or -1 when signal ended it.
  child& on_exit(detail::unique_function<void(int code, int signo)> cb) {
    if (auto* r = ref_.get()) r->on_exit = std::move(cb);
    return *this;
  }
  /// close(code, signal): after exit and once every stdio pipe has closed.
  child& on_close(detail::unique_function<void(int code, int signo)> cb) {
    if (auto* r = ref_.get()) r->on_close = std::move(cb);
    return *this;
  }
  /// error(ec): the spawn failed (or kill() could not be sent, reported by kill()).
  child& on_error(detail::unique_function<void(std::error_code)> cb) {
    if (auto* r = ref_.get()) r->on_error = std::move(cb);
    return *this;
  }

  /// Send a signal (Node's subprocess.kill); an error once it has exited (ESRCH).
  std::error_code kill(int signo = SIGTERM) {
    auto* r = ref_.get();
    if (r == nullptr || r->exited || r->pid <= 0) return std::make_error_code(std::errc::no_such_process);
    if (signo < 0 || signo >= detail::posix::signal_limit) return std::make_error_code(std::errc::invalid_argument);
    return detail::posix::signal_child(r->pid, r->pidfd, signo);
  }

  /// The process id (0 when the spawn failed or once closed).
  [[nodiscard]] int pid() const noexcept {
    auto* r = ref_.get();
    return r != nullptr ? detail::posix::sys_cast<int>(r->pid) : 0;
  }
  [[nodiscard]] bool exited() const noexcept {
    auto* r = ref_.get();
    return r != nullptr && r->exited;
  }
  /// The exit status (-1 when a signal ended it); 0 while running.
  [[nodiscard]] int exit_code() const noexcept {
    auto* r = ref_.get();
    return r != nullptr ? r->exit_code : 0;
  }
  [[nodiscard]] int signal_code() const noexcept {
    auto* r = ref_.get();
    return r != nullptr ? r->term_signal : 0;
  }

  /// The parent's end of the child's descriptor `index`, when it is a pipe
  /// (an empty socket otherwise, or once that pipe closed).
  [[nodiscard]] net::socket stdio(std::size_t index) const {
    auto* r = ref_.get();
    if (r == nullptr || index >= r->pipes.size()) return {};
    detail::stream_record* s = r->pipes[index].get();
    return s != nullptr ? net::socket(*s) : net::socket{};
  }
  [[nodiscard]] net::socket stdin_pipe() const { return stdio(0); }
  [[nodiscard]] net::socket stdout_pipe() const { return stdio(1); }
  [[nodiscard]] net::socket stderr_pipe() const { return stdio(2); }

  /// Keep the loop alive until the child exits (the default).
  child& ref() {
    if (auto* r = ref_.get()) r->loop->set_handle_ref(*r, true);
    return *this;
  }
  /// Let the loop end while the child runs (its pipes still hold it while open).
  child& unref() {
    if (auto* r = ref_.get()) r->loop->set_handle_ref(*r, false);
    return *this;
  }

  /// For module authors.
  explicit child(detail::child_record& r) noexcept : ref_(r) {}

 private:
  record_ref<detail::child_record> ref_;
};

}  // namespace child_process

namespace detail::spawn_ops {

using child_process::spawn_options;
using child_process::stdio_kind;
using child_process::stdio_spec;

inline std::vector<std::string> path_candidates(const spawn_options& o) {
  std::vector<std::string> out;
  if (o.file.find('/') != std::string::npos) {
    out.push_back(o.file);
    return out;
  }
  std::string path;
  bool found = false;
  if (o.env) {
    for (const std::string& e : *o.env)
      if (e.rfind("PATH=", 0) == 0) {
        path = e.substr(5);
        found = true;
      }
  }
  if (!found) {
    const char* p = std::getenv("PATH");
    path = p != nullptr ? p : "/usr/local/bin:/usr/bin:/bin";
  }
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = path.find(':', start);
    std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (dir.empty()) dir = ".";
    out.push_back(dir + "/" + o.file);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

/// Whether pidfd_open works here (kernel 5.3+, not refused by seccomp).
inline bool pidfds_work() {
  static const bool works = [] {
    const int fd = phaseloop::detail::posix::open_pidfd(::getpid());
    if (fd < 0) return false;
    (void)phaseloop::detail::posix::close_fd(fd);
    return true;
  }();
  return works;
}

/// Descriptors the parent made for one spawn, closed unless handed over.
struct made_fds {
  std::vector<int> fds;
  ~made_fds() {
    for (int fd : fds)
      if (fd >= 0) (void)phaseloop::detail::posix::close_fd(fd);
  }
};

/// Start noticing the child's exit: its pidfd, or SIGCHLD and waitpid.
inline void watch_exit(loop_core& loop, phaseloop::detail::child_record& r, bool use_pidfd) {
  namespace posix = phaseloop::detail::posix;
  auto& service = loop.service<phaseloop::detail::child_service>();
  const pid_t pid = r.pid;
  if (use_pidfd) r.pidfd = posix::open_pidfd(pid);
  if (r.pidfd >= 0) {
    r.exit_op.kind = op_kind::poll;
    r.exit_op.fd = r.pidfd;
    r.exit_op.events = io_events::readable;
    r.exit_op.user = &r;
    r.exit_op.owner = &r;
    r.exit_op.complete = &phaseloop::detail::child_ops::pidfd_ready;
    if (loop.submit(r.exit_op)) {
      (void)loop.close_descriptor(std::exchange(r.pidfd, -1));
    }
  }
  if (r.pidfd < 0) {
    r.by_sigchld = true;
    if (std::error_code ec = service.watch_sigchld()) {
      (void)::kill(pid, SIGKILL);
      (void)posix::retry([&] { return ::waitpid(pid, nullptr, 0); });
      r.pid = 0;
      phaseloop::detail::child_ops::exited(r);
      return;
    }
    service.waiting.emplace_back(r);
    // Without a pidfd after all, it may have exited before SIGCHLD was watched.
    if (use_pidfd) service.on_sigchld();
  }

}

/// Start the child and the parent's pipe ends; `r` gets the pid and pipes.
inline std::error_code start(loop_core& loop, const spawn_options& o, phaseloop::detail::child_record& r) {
  namespace posix = phaseloop::detail::posix;
  if (o.file.empty() || o.file.find('\0') != std::string::npos) return std::make_error_code(std::errc::invalid_argument);
  std::vector<stdio_spec> stdio = o.stdio;
  while (stdio.size() < 3) stdio.push_back(stdio_spec::ignore());
  if (stdio.size() > 1024) return std::make_error_code(std::errc::invalid_argument);
  const int n = static_cast<int>(stdio.size());

  std::vector<std::string> candidates = path_candidates(o);
  std::vector<const char*> cand_ptrs;
  for (const auto& c : candidates) cand_ptrs.push_back(c.c_str());
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(o.file.c_str()));
  for (const auto& a : o.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (o.env) {
    for (const auto& e : *o.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }

  made_fds child_side;   // closed after the spawn
  made_fds parent_side;  // closed unless they become streams
  std::vector<int> sources(stdio.size(), -1);
  parent_side.fds.assign(stdio.size(), -1);
  int devnull = -1;
  for (int i = 0; i < n; ++i) {
    const stdio_spec& s = stdio[static_cast<std::size_t>(i)];
    switch (s.kind) {
      case stdio_kind::pipe: {
        int sv[2];
#if defined(SOCK_CLOEXEC)
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return posix::errno_code();
#else
        if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return posix::errno_code();
        (void)::fcntl(sv[0], F_SETFD, FD_CLOEXEC);
        (void)::fcntl(sv[1], F_SETFD, FD_CLOEXEC);
#endif
        parent_side.fds[static_cast<std::size_t>(i)] = sv[0];
        child_side.fds.push_back(sv[1]);
        sources[static_cast<std::size_t>(i)] = sv[1];
        break;
      }
      case stdio_kind::inherit: sources[static_cast<std::size_t>(i)] = i; break;
      case stdio_kind::ignore:
        if (devnull < 0) {
          devnull = posix::retry([] { return ::open("/dev/null", O_RDWR | O_CLOEXEC); });
          if (devnull < 0) return posix::errno_code();
          child_side.fds.push_back(devnull);
        }
        sources[static_cast<std::size_t>(i)] = devnull;
        break;
      case stdio_kind::fd:
        if (s.fd < 0 || s.fd > 0x7fffffff || !posix::is_open(static_cast<int>(s.fd)))
          return std::make_error_code(std::errc::bad_file_descriptor);
        sources[static_cast<std::size_t>(i)] = static_cast<int>(s.fd);
        break;
    }
  }

  posix::spawn_plan plan;
  plan.candidates = cand_ptrs.data();
  plan.candidate_count = cand_ptrs.size();
  plan.argv = argv.data();
  plan.envp = o.env ? envp.data() : environ;
  plan.cwd = o.cwd.empty() ? nullptr : o.cwd.c_str();
  plan.sources = sources.data();
  plan.count = n;
  rlimit lim{};
  plan.close_limit = ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < 1048576
                         ? static_cast<int>(lim.rlim_cur)
                         : 65536;
  plan.detached = o.detached;
  plan.set_uid = o.uid.has_value();
  plan.set_gid = o.gid.has_value();
  plan.uid = posix::sys_cast<uid_t>(o.uid.value_or(0));
  plan.gid = posix::sys_cast<gid_t>(o.gid.value_or(0));

  const bool use_pidfd = !phaseloop::detail::child_force_sigchld.load(std::memory_order_relaxed) && pidfds_work();
  auto& service = loop.service<phaseloop::detail::child_service>();
  if (!use_pidfd) {
    // Watch SIGCHLD before the child exists, so its exit cannot be missed.
    if (std::error_code ec = service.watch_sigchld()) return ec;
  }
  pid_t pid = 0;
  if (std::error_code ec = posix::spawn_process(plan, pid)) return ec;
  r.pid = pid;
  r.pipes.resize(stdio.size());
  for (std::size_t i = 0; i < stdio.size(); ++i) {
    const int fd = parent_side.fds[i];
    if (fd < 0) continue;
    std::error_code ec;
    net::socket s = net::socket::open(loop, fd, ec, true);
    if (ec) continue;  // the child runs without this pipe's parent end (closed with parent_side)
    parent_side.fds[i] = -1;
    phaseloop::detail::stream_record* sr = s.record();
    sr->server = &r;
    sr->on_released = &phaseloop::detail::child_ops::pipe_released;
    r.pipes[i] = record_ref<phaseloop::detail::stream_record>(*sr);
    ++r.open_pipes;
  }
  // The exit watch starts after the pipes' first reads (both deferred), so
  // output written before the exit is read before 'exit' is reported.
  loop.defer([ref = record_ref<phaseloop::detail::child_record>(r), use_pidfd] {
    phaseloop::detail::child_record* c = ref.get();
    if (c != nullptr && !c->exited) watch_exit(*c->loop, *c, use_pidfd);
  });
  return {};
}

}  // namespace detail::spawn_ops

namespace child_process {

/// Start a child (Node's child_process.spawn). A failure is reported through
/// the child's on_error in a tick, then on_close(-errno, 0).
inline child spawn(loop_core& loop, const spawn_options& options) {
  auto& r = loop.make_record<phaseloop::detail::child_record>();
  r.stop = &phaseloop::detail::child_ops::stop;
  loop.activate(r);
  if (std::error_code ec = phaseloop::detail::spawn_ops::start(loop, options, r)) {
    r.spawn_error = ec;
    r.exit_code = -ec.value();
    loop.deactivate(r);
    loop.next_tick([ref = record_ref<phaseloop::detail::child_record>(r), ec] {
      phaseloop::detail::child_record* c = ref.get();
      if (c == nullptr) return;
      if (c->on_error) {
        auto fn = std::move(c->on_error);
        c->loop->invoke(fn, ec);
      }
      if ((c = ref.get()) != nullptr) phaseloop::detail::child_ops::emit_close(*c);
    });
  }
  return child(r);
}

/// As spawn, reporting a failure in `ec` at once (the child is then empty and has no events).
inline child spawn(loop_core& loop, const spawn_options& options, std::error_code& ec) {
  auto& r = loop.make_record<phaseloop::detail::child_record>();
  r.stop = &phaseloop::detail::child_ops::stop;
  loop.activate(r);
  ec = phaseloop::detail::spawn_ops::start(loop, options, r);
  if (ec) {
    r.close_emitted = true;
    loop.close_handle(r, {});
    return child{};
  }
  return child(r);
}

// ------------------------------------------------------------ exec, exec_file

/// Why exec/exec_file failed, beside system errors (the spawn's own).
enum class exec_errc {
  exit_status = 1,      ///< the child exited with a status other than 0
  killed,               ///< a signal ended the child
  max_buffer_exceeded,  ///< stdout or stderr went over max_buffer (the child was killed)
  timed_out,            ///< the timeout ran out (the child was killed)
};

}  // namespace child_process

namespace detail::spawn_ops {
using child_process::exec_errc;
// clang's -Wweak-vtables cannot be met by a header-only library (see error.hpp).
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wweak-vtables"
#endif
class exec_category final : public std::error_category {
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
 public:
  [[nodiscard]] const char* name() const noexcept override { return "phaseloop.child_process"; }
  [[nodiscard]] std::string message(int value) const override {
    switch (static_cast<exec_errc>(value)) {
      case exec_errc::exit_status: return "the command exited with a non-zero status";
      case exec_errc::killed: return "the command was killed by a signal";
      case exec_errc::max_buffer_exceeded: return "stdout or stderr exceeded max_buffer";
      case exec_errc::timed_out: return "the command timed out";
    }
    return "unknown child_process error";
  }
};
}  // namespace detail::spawn_ops

namespace child_process {

/// The error category of exec_errc.
inline const std::error_category& exec_category() noexcept {
  return phaseloop::detail::immortal<phaseloop::detail::spawn_ops::exec_category>();
}
inline std::error_code make_error_code(exec_errc e) noexcept { return {static_cast<int>(e), exec_category()}; }

/// What exec and exec_file collected.
struct exec_result {
  std::string out;  ///< everything the child wrote to stdout
  std::string err;  ///< everything it wrote to stderr
  int code = 0;     ///< exit status (-1 when a signal ended it; -errno when the spawn failed)
  int signo = 0;    ///< the signal that ended it, or 0
};

/// Options of exec and exec_file (Node's).
struct exec_options {
  std::string cwd;
  std::optional<std::vector<std::string>> env;
  std::size_t max_buffer = 1024 * 1024;              ///< per stream; more kills the child
  std::chrono::milliseconds timeout{0};              ///< 0: none; then the child gets kill_signal
  int kill_signal = SIGTERM;
  std::string shell = "/bin/sh";                     ///< exec only: runs `shell -c command`
};

/// The error a promise form rejects with: the error code and what was collected.
// clang's -Wweak-vtables cannot be met by a header-only library (no source
// file can hold an out-of-line virtual function): silenced for this class.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wweak-vtables"
#endif
class exec_error : public std::system_error {
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
 public:
  exec_error(std::error_code ec, exec_result r) : std::system_error(ec, "phaseloop::child_process::exec"), result(std::move(r)) {}
  exec_result result;
};

}  // namespace child_process

namespace detail::spawn_ops {
using child_process::child;
// As Node's execFile kill(): the output pipes go (a grandchild writing to
// them gets EPIPE), then the signal.
inline void stop_child(child& c, int signo) {
  c.stdout_pipe().destroy();
  c.stderr_pipe().destroy();
  (void)c.kill(signo);
}
}  // namespace detail::spawn_ops

namespace child_process {

/// Run `file` with `args`, collect its output, then cb(ec, result): ec is the
/// spawn's error, exit_status or killed for a child that failed, or
/// max_buffer_exceeded / timed_out. stdin is /dev/null.
template <class Cb>
child exec_file(loop_core& loop, std::string file, std::vector<std::string> args, const exec_options& options,
                Cb cb) {
  static_assert(std::is_invocable_v<Cb&, std::error_code, exec_result>,
                "exec_file: the callback must accept (std::error_code, child_process::exec_result)");
  struct state {
    exec_result result;
    std::error_code error;
    timer_id timer{};
    Cb cb;
    std::size_t max_buffer = 0;
  };
  auto st = std::make_shared<state>(state{{}, {}, {}, std::move(cb), options.max_buffer});
  spawn_options so;
  so.file = std::move(file);
  so.args = std::move(args);
  so.env = options.env;
  so.cwd = options.cwd;
  so.stdio = {stdio_spec::ignore(), stdio_spec::pipe(), stdio_spec::pipe()};
  child c = spawn(loop, so);
  const int kill_signal = options.kill_signal;
  auto collect = [st, c, kill_signal](std::string exec_result::*field) mutable {
    return [st, c, kill_signal, field](std::span<const std::byte> d) mutable {
      std::string& s = st->result.*field;
      if (st->error) return;
      if (s.size() + d.size() > st->max_buffer) {
        s.append(reinterpret_cast<const char*>(d.data()), st->max_buffer - s.size());
        st->error = make_error_code(exec_errc::max_buffer_exceeded);
        phaseloop::detail::spawn_ops::stop_child(c, kill_signal);
        return;
      }
      s.append(reinterpret_cast<const char*>(d.data()), d.size());
    };
  };
  c.stdout_pipe().on_data(collect(&exec_result::out));
  c.stderr_pipe().on_data(collect(&exec_result::err));
  c.on_error([st](std::error_code ec) {
    if (!st->error) st->error = ec;
  });
  c.on_close([st, &loop](int code, int signo) mutable {
    if (st->timer.generation != 0) loop.clear_timer(std::exchange(st->timer, {}));
    st->result.code = code;
    st->result.signo = signo;
    if (!st->error) {
      if (signo != 0) st->error = make_error_code(exec_errc::killed);
      else if (code != 0) st->error = make_error_code(exec_errc::exit_status);
    }
    auto fn = std::move(st->cb);
    fn(st->error, std::move(st->result));
  });
  if (options.timeout.count() > 0 && c.pid() > 0) {
    st->timer = loop.set_timer(
        [st, c, kill_signal]() mutable {
          st->timer = {};
          if (c.exited()) return;
          if (!st->error) st->error = make_error_code(exec_errc::timed_out);
          phaseloop::detail::spawn_ops::stop_child(c, kill_signal);
        },
        options.timeout);
  }
  return c;
}

/// Run `command` through the shell (`shell -c command`), as exec_file.
template <class Cb>
child exec(loop_core& loop, std::string command, const exec_options& options, Cb cb) {
  return exec_file(loop, options.shell, {"-c", std::move(command)}, options, std::move(cb));
}
template <class Cb>
child exec(loop_core& loop, std::string command, Cb cb) {
  return exec(loop, std::move(command), exec_options{}, std::move(cb));
}

/// Promise forms (Node's util.promisify(exec)): fulfil with the result,
/// reject with exec_error.
namespace promises {

template <class Loop>
promise<exec_result> exec_file(Loop& loop, std::string file, std::vector<std::string> args,
                               const exec_options& options = {}) {
  auto [p, r] = loop.template make_promise<exec_result>();
  child_process::exec_file(loop, std::move(file), std::move(args), options,
                           [r = std::move(r)](std::error_code ec, exec_result res) mutable {
                             if (ec)
                               r.reject(std::make_exception_ptr(exec_error(ec, std::move(res))));
                             else
                               r.resolve(std::move(res));
                           });
  return std::move(p);
}

template <class Loop>
promise<exec_result> exec(Loop& loop, std::string command, const exec_options& options = {}) {
  return promises::exec_file(loop, options.shell, {"-c", std::move(command)}, options);
}

}  // namespace promises

}  // namespace child_process
}  // namespace phaseloop

// A std trait specialization, not phaseloop API: out of the reference.
/// \cond
template <>
struct std::is_error_code_enum<phaseloop::child_process::exec_errc> : std::true_type {};
/// \endcond

#endif  // !_WIN32
