// child_process on the real POSIX loops: events and their order, failing
// spawns (no zombie, no descriptor leak), spawning beside a busy thread
// pool, kill, a child closing stdout early, 10 MB read slowly with
// backpressure, privileges, descriptors and signal state in the child,
// exec/exec_file with their promise forms, and the SIGCHLD fallback.

#include "support.hpp"
#include "posix.hpp"

// POSIX modules, tested on Linux's real loops for now.
#if defined(__linux__)

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>

namespace {

using namespace phaseloop;
using namespace phaseloop::test;
namespace cp = phaseloop::child_process;

std::string text(std::span<const std::byte> d) { return {reinterpret_cast<const char*>(d.data()), d.size()}; }

// A program with every descriptor on /dev/null.
cp::spawn_options program(std::string file, std::vector<std::string> args) {
  cp::spawn_options o;
  o.file = std::move(file);
  o.args = std::move(args);
  o.stdio = {};
  return o;
}

int open_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  REQUIRE(d != nullptr);
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;  // the directory's own descriptor
}

// No child of this process is left unreaped.
bool no_zombie() {
  int status = 0;
  const pid_t r = ::waitpid(-1, &status, WNOHANG);
  return r == -1 && errno == ECHILD;
}

struct sigchld_mode {
  explicit sigchld_mode(bool on) { detail::child_force_sigchld = on; }
  ~sigchld_mode() { detail::child_force_sigchld = false; }
};

}  // namespace

TEMPLATE_TEST_CASE("child: sh -c 'echo hi; exit 3' gives data, exit 3, close", "[child]",
                   PHASELOOP_TEST_REAL_IO_LOOPS) {
  const bool by_sigchld = GENERATE(false, true);
  INFO("SIGCHLD fallback: " << by_sigchld);
  sigchld_mode mode(by_sigchld);
  TestType loop;
  trace out;
  auto c = cp::spawn(loop, sh("echo hi; exit 3"));
  REQUIRE(c);
  CHECK(c.pid() > 0);
  c.stdout_pipe().on_data([&](std::span<const std::byte> d) { out.push_back("data " + text(d)); });
  c.stdout_pipe().on_close([&](bool) { out.push_back("stdout close"); });
  c.on_exit([&](int code, int signo) { out.push_back("exit " + std::to_string(code) + " " + std::to_string(signo)); });
  c.on_close([&](int code, int signo) { out.push_back("close " + std::to_string(code) + " " + std::to_string(signo)); });
  loop.run();
  REQUIRE(out.size() == 4);
  CHECK(out.back() == "close 3 0");
  // 'exit' and the pipe's close may come in either order; data comes before both.
  CHECK(out[0] == "data hi\n");
  CHECK(((out[1] == "exit 3 0" && out[2] == "stdout close") || (out[1] == "stdout close" && out[2] == "exit 3 0")));
  CHECK_FALSE(c);  // released after close
  CHECK(no_zombie());
}

TEMPLATE_TEST_CASE("child: 100 failing spawns then a real one: errors on the callback, no zombie, no fd leak",
                   "[child]", PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  // A file that exists but may not run (EACCES), a missing one (ENOENT), a bad cwd (ENOENT).
  char path[] = "/tmp/phaseloop_child_noexec_XXXXXX";
  const int tmp = ::mkstemp(path);
  REQUIRE(tmp >= 0);
  ::close(tmp);
  ::chmod(path, 0644);
  loop.run();  // whatever the loop opens once (its signal or pool machinery) is opened before counting
  const int fds_before = open_fds();
  int errors = 0, closes = 0, enoent = 0, eacces = 0;
  for (int i = 0; i < 100; ++i) {
    cp::spawn_options o;
    if (i % 3 == 0) {
      o.file = "/nonexistent/phaseloop-no-such-program";
    } else if (i % 3 == 1) {
      o.file = path;
    } else {
      o.file = "/bin/true";
      o.cwd = "/nonexistent/phaseloop-no-such-dir";
    }
    auto c = cp::spawn(loop, o);
    c.on_error([&](std::error_code ec) {
      ++errors;
      if (ec == std::errc::no_such_file_or_directory) ++enoent;
      if (ec == std::errc::permission_denied) ++eacces;
    });
    c.on_exit([](int, int) { FAIL("a failed spawn exited"); });
    c.on_close([&](int code, int) {
      CHECK(code < 0);
      ++closes;
    });
  }
  // The form with an error code reports at once.
  std::error_code ec;
  cp::spawn_options missing;
  missing.file = "phaseloop-no-such-program-in-path";
  auto none = cp::spawn(loop, missing, ec);
  CHECK(ec == std::errc::no_such_file_or_directory);
  CHECK_FALSE(none);
  loop.run();
  CHECK(errors == 100);
  CHECK(closes == 100);
  CHECK(enoent == 67);
  CHECK(eacces == 33);
  int exit_code = -100;
  std::string got;
  auto real = cp::spawn(loop, sh("echo ok"));
  real.stdout_pipe().on_data([&](std::span<const std::byte> d) { got += text(d); });
  real.on_exit([&](int code, int) { exit_code = code; });
  loop.run();
  CHECK(exit_code == 0);
  CHECK(got == "ok\n");
  CHECK(no_zombie());
  CHECK(open_fds() == fds_before);
  ::unlink(path);
}

TEST_CASE("child: spawning does not wait for a saturated thread pool", "[child]") {
  pool_loop loop;
  trace out;
  std::atomic<bool> release{false};
  for (int i = 0; i < 16; ++i)
    loop.queue_work([&] {
      while (!release.load()) std::this_thread::sleep_for(1ms);
    }, [&](std::error_code) {});
  auto c = cp::spawn(loop, program("/bin/true", {}));
  c.on_exit([&](int code, int) {
    out.push_back("exit " + std::to_string(code));
    release = true;  // only now do the jobs end
  });
  loop.set_timeout([&] {
    out.push_back("gave up");
    release = true;
  }, 5000ms).unref();
  loop.run();
  CHECK(out == trace{"exit 0"});
}

TEMPLATE_TEST_CASE("child: kill of a running child; kill after exit is ESRCH", "[child]",
                   PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  int code = 0, signo = 0;
  auto c = cp::spawn(loop, program("sleep", {"30"}));
  REQUIRE(c.pid() > 0);
  c.on_exit([&](int cd, int s) {
    code = cd;
    signo = s;
  });
  loop.set_timeout([&] { CHECK_FALSE(c.kill(SIGTERM)); }, 20ms);
  loop.run();
  CHECK(code == -1);
  CHECK(signo == SIGTERM);
  CHECK(c.kill(SIGTERM) == std::errc::no_such_process);
  CHECK(no_zombie());
}

TEMPLATE_TEST_CASE("child: a child closing stdout early keeps running; close waits for its exit", "[child]",
                   PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  trace out;
  auto c = cp::spawn(loop, sh("echo early; exec 1>&-; sleep 0.2; echo late >&2; exit 5"));
  c.stdout_pipe().on_data([&](std::span<const std::byte> d) { out.push_back("out " + text(d)); });
  c.stdout_pipe().on_end([&] { out.push_back("out end"); });
  c.stdout_pipe().on_close([&](bool) { out.push_back("out close"); });
  c.stderr_pipe().on_data([&](std::span<const std::byte> d) { out.push_back("err " + text(d)); });
  c.on_exit([&](int code, int) { out.push_back("exit " + std::to_string(code)); });
  c.on_close([&](int code, int) { out.push_back("close " + std::to_string(code)); });
  loop.run();
  REQUIRE(out.size() >= 6);
  CHECK(out[0] == "out early\n");
  CHECK(out[1] == "out end");
  CHECK(out[2] == "out close");
  // stderr's last data and the exit may come in either order; close is last.
  CHECK(out.size() == 6);
  CHECK(std::find(out.begin(), out.end(), "err late\n") != out.end());
  CHECK(std::find(out.begin(), out.end(), "exit 5") != out.end());
  CHECK(out.back() == "close 5");
}

TEMPLATE_TEST_CASE("child: 10 MB on stdout read slowly (pause/resume): nothing lost", "[child]",
                   PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  constexpr std::size_t total = 10 * 1024 * 1024;
  const std::string pattern = "0123456789abcde\n";  // what `yes 0123456789abcde` repeats
  std::size_t got = 0, bad = 0, pauses = 0;
  auto c = cp::spawn(loop, sh("yes 0123456789abcde | head -c " + std::to_string(total)));
  net::socket out = c.stdout_pipe();
  out.on_data([&](std::span<const std::byte> d) {
    for (std::size_t i = 0; i < d.size(); ++i)
      if (static_cast<char>(d[i]) != pattern[(got + i) % pattern.size()]) ++bad;
    got += d.size();
    out.pause();  // a slow reader: the pipe fills and the child waits
    ++pauses;
    CHECK(out.paused());
    loop.set_timeout([&] { out.resume(); }, 1ms);
  });
  int code = -100;
  c.on_exit([&](int cd, int) { code = cd; });
  loop.run();
  CHECK(got == total);
  CHECK(bad == 0);
  CHECK(pauses > 10);
  CHECK(code == 0);
}

TEMPLATE_TEST_CASE("child: stdin pipe, fd and inherit stdio, env and cwd", "[child]", PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  cp::spawn_options o = sh("cat; echo \"$PHASELOOP_X $(pwd)\" >&3");
  o.env = std::vector<std::string>{"PHASELOOP_X=yes", "PATH=/usr/bin:/bin"};
  o.cwd = "/tmp";
  o.stdio = {cp::stdio_spec::pipe(), cp::stdio_spec::pipe(), cp::stdio_spec::inherit(), cp::stdio_spec::from_fd(p[1])};
  std::string got;
  auto c = cp::spawn(loop, o);
  ::close(p[1]);
  CHECK_FALSE(c.stdio(2));  // inherited: no pipe
  c.stdout_pipe().on_data([&](std::span<const std::byte> d) { got += text(d); });
  c.stdin_pipe().write("abc");
  c.stdin_pipe().end();
  loop.run();
  CHECK(got == "abc");
  char buf[256] = {};
  const ssize_t n = ::read(p[0], buf, sizeof buf - 1);
  ::close(p[0]);
  CHECK(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0) == "yes /tmp\n");
}

TEST_CASE("child: no stray descriptors; reset signal mask and dispositions", "[child]") {
  epoll_heap_loop loop;
  const int stray = ::open("/dev/null", O_RDONLY);  // not close-on-exec
  REQUIRE(stray >= 3);
  struct sigaction ign {}, old_int {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ign, &old_int);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  ::pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  auto r = cp::promises::exec(loop, "ls /proc/self/fd; grep -E '^Sig(Blk|Ign)' /proc/self/status");
  std::string out;
  r.then([&](cp::exec_result res) { out = res.out; });
  loop.run();
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  ::close(stray);
  INFO(out);
  // ls sees 0, 1, 2 and its own directory descriptor (3): nothing of ours.
  CHECK(out.rfind("0\n1\n2\n3\n", 0) == 0);
  CHECK(out.find("\n" + std::to_string(stray + 1) + "\n") == std::string::npos);
  CHECK(out.find("SigBlk:\t0000000000000000\n") != std::string::npos);
  CHECK(out.find("SigIgn:\t0000000000000000\n") != std::string::npos);
}

TEST_CASE("child: privileges dropped (uid, gid, groups), or EPERM without them", "[child]") {
  epoll_heap_loop loop;
  cp::exec_options o;
  std::error_code ec;
  cp::exec_result res;
  const bool root = ::geteuid() == 0;
  cp::spawn_options so = sh("id -u; id -g; id -G");
  so.uid = root ? 65534u : 0u;
  so.gid = root ? 65534u : 0u;
  std::string out;
  std::error_code error;
  int code = -100;
  auto c = cp::spawn(loop, so);
  c.stdout_pipe().on_data([&](std::span<const std::byte> d) { out += text(d); });
  c.on_error([&](std::error_code e) { error = e; });
  c.on_close([&](int cd, int) { code = cd; });
  loop.run();
  if (root) {
    CHECK_FALSE(error);
    CHECK(out == "65534\n65534\n65534\n");
    CHECK(code == 0);
  } else {
    CHECK(error == std::errc::operation_not_permitted);
    CHECK(code < 0);
  }
}

TEST_CASE("child: exec and exec_file collect output; promise forms; max_buffer and timeout", "[child]") {
  epoll_heap_loop loop;
  std::error_code e1;
  cp::exec_result r1;
  cp::exec(loop, "echo out; echo err >&2; exit 2", [&](std::error_code ec, cp::exec_result r) {
    e1 = ec;
    r1 = std::move(r);
  });
  std::error_code e2;
  cp::exec_result r2;
  cp::exec_file(loop, "printf", {"%s-%s", "a", "b"}, {}, [&](std::error_code ec, cp::exec_result r) {
    e2 = ec;
    r2 = std::move(r);
  });
  cp::exec_options small;
  small.max_buffer = 1000;
  std::error_code e3;
  cp::exec(loop, "yes", small, [&](std::error_code ec, cp::exec_result r) {
    e3 = ec;
    CHECK(r.out.size() == 1000);
  });
  cp::exec_options quick;
  quick.timeout = 30ms;
  std::error_code e4;
  int s4 = 0;
  cp::exec_file(loop, "sleep", {"30"}, quick, [&](std::error_code ec, cp::exec_result r) {
    e4 = ec;
    s4 = r.signo;
  });
  std::string fulfilled;
  std::error_code rejected;
  cp::promises::exec(loop, "echo fine").then([&](cp::exec_result r) { fulfilled = r.out; });
  cp::promises::exec_file(loop, "false", {})
      .then([](cp::exec_result) {}, [&](std::exception_ptr p) {
        try {
          std::rethrow_exception(p);
        } catch (const cp::exec_error& e) {
          rejected = e.code();
          CHECK(e.result.code == 1);
        }
      });
  loop.run();
  CHECK(e1 == cp::exec_errc::exit_status);
  CHECK(r1.out == "out\n");
  CHECK(r1.err == "err\n");
  CHECK(r1.code == 2);
  CHECK_FALSE(e2);
  CHECK(r2.out == "a-b");
  CHECK(e3 == cp::exec_errc::max_buffer_exceeded);
  CHECK(e4 == cp::exec_errc::timed_out);
  CHECK(s4 == SIGTERM);
  CHECK(fulfilled == "fine\n");
  CHECK(rejected == cp::exec_errc::exit_status);
  CHECK(no_zombie());
}

#endif  // __linux__
