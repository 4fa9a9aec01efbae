// phaseloop::fs: one suite, run with the inline and the thread-pool executor.
#include "support.hpp"
#include "fs.hpp"

#if !defined(_WIN32)

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using namespace phaseloop;
using namespace std::chrono_literals;

using phaseloop::test::call;
using phaseloop::test::call0;
using phaseloop::test::pool_loop;
using phaseloop::test::temp_dir;

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string text_of(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// An async function on fs.promises: write, copy, read back, then a failing stat.
template <class Loop>
promise<std::string> copy_then_read(Loop& loop, std::string dir) {
  co_await fs::promises::write_file(loop, dir + "/a", std::string("hello"));
  co_await fs::promises::copyfile(loop, dir + "/a", dir + "/b");
  const fs::stats st = co_await fs::promises::stat(loop, dir + "/b");
  std::string text = co_await fs::promises::read_file(loop, dir + "/b");
  text += " " + std::to_string(st.size);
  try {
    co_await fs::promises::stat(loop, dir + "/missing");
    text += " found?";
  } catch (const std::system_error& e) {
    text += e.code() == std::errc::no_such_file_or_directory ? " ENOENT" : " other error";
  }
  co_return text;
}

}  // namespace

TEMPLATE_TEST_CASE("fs.promises: results fulfil, errors reject with std::system_error", "[fs]", PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  temp_dir dir;
  std::string result;
  copy_then_read(loop, dir.path).then([&](std::string& v) { result = v; });
  loop.run();
  CHECK(result == "hello 5 ENOENT");

  std::vector<std::string> trace;
  const std::string file = dir / "p";
  fs::promises::open(loop, file, "w+")
      .then([&](fs::file_descriptor& fd) {
        trace.push_back(fd >= 0 ? "open" : "open?");
        return fs::promises::close(loop, fd);
      })
      .then([&] { trace.emplace_back("closed"); });
  fs::promises::read_file(loop, dir / "missing")
      .then([&](std::string&) { trace.emplace_back("read?"); },
            [&](const std::system_error& e) {
              trace.push_back(e.code() == std::errc::no_such_file_or_directory ? "rejected ENOENT" : "rejected?");
            });
  fs::promises::close(loop, -1).catch_([&](const std::system_error& e) {
    trace.push_back(e.code() == std::errc::bad_file_descriptor ? "rejected EBADF" : "rejected?");
  });
  loop.run();
  std::sort(trace.begin(), trace.end());  // three independent chains
  CHECK(trace == std::vector<std::string>{"closed", "open", "rejected EBADF", "rejected ENOENT"});
}

TEMPLATE_TEST_CASE("fs: write_file, read_file and append_file round trip", "[fs]", PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  temp_dir dir;
  const std::string file = dir / "a.txt";
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::write_file(loop, file, "hello", std::move(cb)); }));
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::append_file(loop, file, ", world", std::move(cb)); }));
  auto [ec, text] = call<std::string>(loop, [&](auto cb) { fs::read_file(loop, file, std::move(cb)); });
  CHECK_FALSE(ec);
  CHECK(text == "hello, world");

  std::vector<std::byte> data(200000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 7);
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::write_file(loop, file, data, std::move(cb)); }));
  auto [ec2, back] = call<std::vector<std::byte>>(
      loop, [&](auto cb) { fs::read_file<std::vector<std::byte>>(loop, file, std::move(cb)); });
  CHECK_FALSE(ec2);
  const bool same_bytes = back == data;  // std::byte has no Catch printer
  CHECK(back.size() == data.size());
  CHECK(same_bytes);

  CHECK_FALSE(call0(loop, [&](auto cb) { fs::write_file(loop, file, std::string(), std::move(cb)); }));
  auto [ec3, empty] = call<std::string>(loop, [&](auto cb) { fs::read_file(loop, file, std::move(cb)); });
  CHECK_FALSE(ec3);
  CHECK(empty.empty());
}

#if defined(__linux__)
TEMPLATE_TEST_CASE("fs: read_file reads files whose size the system reports as 0", "[fs]",
                   PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  auto [ec, text] =
      call<std::string>(loop, [&](auto cb) { fs::read_file(loop, "/proc/self/status", std::move(cb)); });
  CHECK_FALSE(ec);
  CHECK(text.find("Name:") != std::string::npos);
}
#endif

TEMPLATE_TEST_CASE("fs: open, write, read (positional and current), fstat, ftruncate, fsync, close",
                   "[fs]", PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  temp_dir dir;
  const std::string file = dir / "rw";
  auto fd_result = call<fs::file_descriptor>(loop, [&](auto cb) { fs::open(loop, file, "w+", std::move(cb)); });
  const auto ec = fd_result.first;
  const auto fd = fd_result.second;
  REQUIRE_FALSE(ec);
  REQUIRE(fd >= 0);

  const std::string first = "0123456789";
  auto [wec, written] = call<std::size_t>(loop, [&](auto cb) { fs::write(loop, fd, bytes_of(first), std::move(cb)); });
  CHECK_FALSE(wec);
  CHECK(written == 10);
  const std::string patch = "AB";
  auto [pec, pw] = call<std::size_t>(loop, [&](auto cb) { fs::write(loop, fd, bytes_of(patch), std::uint64_t{3}, std::move(cb)); });
  CHECK_FALSE(pec);
  CHECK(pw == 2);

  std::array<std::byte, 4> buf{};
  auto [rec, got] = call<std::size_t>(loop, [&](auto cb) { fs::read(loop, fd, std::span(buf), std::uint64_t{2}, std::move(cb)); });
  CHECK_FALSE(rec);
  CHECK(got == 4);
  CHECK(text_of(std::span(buf).first(got)) == "2AB5");
  // The current position is still at the end of the first write: reading gives 0 (EOF).
  auto [eec, eof] = call<std::size_t>(loop, [&](auto cb) { fs::read(loop, fd, std::span(buf), std::move(cb)); });
  CHECK_FALSE(eec);
  CHECK(eof == 0);

  auto [sec, st] = call<fs::stats>(loop, [&](auto cb) { fs::fstat(loop, fd, std::move(cb)); });
  CHECK_FALSE(sec);
  CHECK(st.size == 10);
  CHECK(st.is_file());
  CHECK_FALSE(st.is_directory());

  CHECK_FALSE(call0(loop, [&](auto cb) { fs::ftruncate(loop, fd, std::uint64_t{4}, std::move(cb)); }));
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::fsync(loop, fd, std::move(cb)); }));
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::fdatasync(loop, fd, std::move(cb)); }));
  auto [sec2, st2] = call<fs::stats>(loop, [&](auto cb) { fs::fstat(loop, fd, std::move(cb)); });
  CHECK_FALSE(sec2);
  CHECK(st2.size == 4);
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::ftruncate(loop, fd, std::move(cb)); }));
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::close(loop, fd, std::move(cb)); }));

  // Reopen read-only with O_* flags and read from the current position.
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::write_file(loop, file, "abcdef", std::move(cb)); }));
  auto rfd_result = call<fs::file_descriptor>(loop, [&](auto cb) { fs::open(loop, file, O_RDONLY, std::move(cb)); });
  const auto oec = rfd_result.first;
  const auto rfd = rfd_result.second;
  REQUIRE_FALSE(oec);
  auto [r1, n1] = call<std::size_t>(loop, [&](auto cb) { fs::read(loop, rfd, std::span(buf).first(3), std::move(cb)); });
  CHECK_FALSE(r1);
  CHECK(text_of(std::span(buf).first(n1)) == "abc");
  auto [r2, n2] = call<std::size_t>(loop, [&](auto cb) { fs::read(loop, rfd, std::span(buf), std::move(cb)); });
  CHECK_FALSE(r2);
  CHECK(text_of(std::span(buf).first(n2)) == "def");
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::close(loop, rfd, std::move(cb)); }));
}

TEMPLATE_TEST_CASE("fs: paths, links, directories, modes and times", "[fs]", PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  temp_dir dir;
  const std::string file = dir / "f";
  REQUIRE_FALSE(call0(loop, [&](auto cb) { fs::write_file(loop, file, "data", std::move(cb)); }));

  auto [sec, st] = call<fs::stats>(loop, [&](auto cb) { fs::stat(loop, file, std::move(cb)); });
  CHECK_FALSE(sec);
  CHECK(st.size == 4);
  CHECK(st.nlink == 1);
  CHECK(st.mtime > std::chrono::system_clock::time_point{});

  // symlink, lstat, readlink, realpath
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::symlink(loop, "f", dir / "ln", std::move(cb)); }));
  auto [lec, lst] = call<fs::stats>(loop, [&](auto cb) { fs::lstat(loop, dir / "ln", std::move(cb)); });
  CHECK_FALSE(lec);
  CHECK(lst.is_symbolic_link());
  auto [fec, fst] = call<fs::stats>(loop, [&](auto cb) { fs::stat(loop, dir / "ln", std::move(cb)); });
  CHECK_FALSE(fec);
  CHECK(fst.is_file());
  CHECK(fst.ino == st.ino);
  auto [rlec, target] = call<std::string>(loop, [&](auto cb) { fs::readlink(loop, dir / "ln", std::move(cb)); });
  CHECK_FALSE(rlec);
  CHECK(target == "f");
  auto [rpec, real] = call<std::string>(loop, [&](auto cb) { fs::realpath(loop, dir / "ln", std::move(cb)); });
  CHECK_FALSE(rpec);
  CHECK(real == std::filesystem::canonical(file).string());

  // link
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::link(loop, file, dir / "hard", std::move(cb)); }));
  auto [hec, hst] = call<fs::stats>(loop, [&](auto cb) { fs::stat(loop, file, std::move(cb)); });
  CHECK_FALSE(hec);
  CHECK(hst.nlink == 2);

  // chmod, access
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::chmod(loop, file, 0640u, std::move(cb)); }));
  auto [mec, mst] = call<fs::stats>(loop, [&](auto cb) { fs::stat(loop, file, std::move(cb)); });
  CHECK_FALSE(mec);
  CHECK((mst.mode & 0777u) == 0640u);
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::access(loop, file, std::move(cb)); }));
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::access(loop, file, fs::constants::r_ok | fs::constants::w_ok, std::move(cb)); }));
  CHECK(call0(loop, [&](auto cb) { fs::access(loop, dir / "nope", std::move(cb)); }) ==
        std::errc::no_such_file_or_directory);

  // utimes, nanosecond-exact where the file system keeps it; before 1970 too
  const auto when = std::chrono::system_clock::time_point(std::chrono::seconds(1'000'000'000));
  const auto before = std::chrono::system_clock::time_point(-std::chrono::seconds(86400));
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::utimes(loop, file, before, when, std::move(cb)); }));
  auto [tec, tst] = call<fs::stats>(loop, [&](auto cb) { fs::stat(loop, file, std::move(cb)); });
  CHECK_FALSE(tec);
  CHECK(tst.mtime == when);
  CHECK(tst.atime == before);

  // rename, unlink
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::rename(loop, dir / "hard", dir / "moved", std::move(cb)); }));
  CHECK(call0(loop, [&](auto cb) { fs::stat(loop, dir / "hard", [cb = std::move(cb)](std::error_code ec, fs::stats) mutable { cb(ec); }); }) ==
        std::errc::no_such_file_or_directory);
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::unlink(loop, dir / "moved", std::move(cb)); }));

  // mkdir, mkdir -p, readdir with types, rmdir
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::mkdir(loop, dir / "sub", std::move(cb)); }));
  CHECK(call0(loop, [&](auto cb) { fs::mkdir(loop, dir / "sub", std::move(cb)); }) == std::errc::file_exists);
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::mkdir(loop, dir / "sub", fs::mkdir_options{.recursive = true}, std::move(cb)); }));
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::mkdir(loop, dir / "p/q/r/", fs::mkdir_options{.recursive = true}, std::move(cb)); }));
  CHECK(std::filesystem::is_directory(dir / "p/q/r"));
  auto [dec, entries] = call<std::vector<fs::dirent>>(loop, [&](auto cb) { fs::readdir(loop, dir.path, std::move(cb)); });
  CHECK_FALSE(dec);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  REQUIRE(entries.size() == 4);
  CHECK(entries[0].name == "f");
  CHECK(entries[0].is_file());
  CHECK(entries[1].name == "ln");
  CHECK(entries[1].is_symbolic_link());
  CHECK(entries[2].name == "p");
  CHECK(entries[2].is_directory());
  CHECK(entries[3].name == "sub");
  CHECK(entries[3].type == fs::file_type::directory);
  CHECK(call0(loop, [&](auto cb) { fs::rmdir(loop, dir / "p", std::move(cb)); }) == std::errc::directory_not_empty);
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::rmdir(loop, dir / "sub", std::move(cb)); }));

  // mkdtemp
  auto [tmpec, tmp] = call<std::string>(loop, [&](auto cb) { fs::mkdtemp(loop, dir / "t-", std::move(cb)); });
  CHECK_FALSE(tmpec);
  CHECK(tmp.size() == (dir / "t-").size() + 6);
  CHECK(std::filesystem::is_directory(tmp));

  // copyfile, with and without copyfile_excl
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::copyfile(loop, file, dir / "copy", std::move(cb)); }));
  auto [cec, copied] = call<std::string>(loop, [&](auto cb) { fs::read_file(loop, dir / "copy", std::move(cb)); });
  CHECK_FALSE(cec);
  CHECK(copied == "data");
  CHECK(call0(loop, [&](auto cb) { fs::copyfile(loop, file, dir / "copy", fs::constants::copyfile_excl, std::move(cb)); }) ==
        std::errc::file_exists);
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::copyfile(loop, file, file, std::move(cb)); }));  // onto itself
  auto [sec3, same] = call<std::string>(loop, [&](auto cb) { fs::read_file(loop, file, std::move(cb)); });
  CHECK_FALSE(sec3);
  CHECK(same == "data");
}

TEMPLATE_TEST_CASE("fs errors: missing file", "[fs]", PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  temp_dir dir;
  const std::string missing = dir / "missing";
  const auto enoent = std::errc::no_such_file_or_directory;
  auto [sec, st] = call<fs::stats>(loop, [&](auto cb) { fs::stat(loop, missing, std::move(cb)); });
  CHECK(sec == enoent);
  CHECK(st.size == 0);
  auto [oec, fd] = call<fs::file_descriptor>(loop, [&](auto cb) { fs::open(loop, missing, "r", std::move(cb)); });
  CHECK(oec == enoent);
  CHECK(fd == -1);
  auto [rec, text] = call<std::string>(loop, [&](auto cb) { fs::read_file(loop, missing, std::move(cb)); });
  CHECK(rec == enoent);
  CHECK(text.empty());
  CHECK(call0(loop, [&](auto cb) { fs::unlink(loop, missing, std::move(cb)); }) == enoent);
  CHECK(call0(loop, [&](auto cb) { fs::rename(loop, missing, dir / "x", std::move(cb)); }) == enoent);
  CHECK(call0(loop, [&](auto cb) { fs::copyfile(loop, missing, dir / "x", std::move(cb)); }) == enoent);
  CHECK(call0(loop, [&](auto cb) { fs::write_file(loop, dir / "no/such/dir/f", "x", std::move(cb)); }) == enoent);
  CHECK(call0(loop, [&](auto cb) { fs::mkdir(loop, dir / "no/such", std::move(cb)); }) == enoent);
  auto [lec, link] = call<std::string>(loop, [&](auto cb) { fs::readlink(loop, missing, std::move(cb)); });
  CHECK(lec == enoent);
  auto [dec, entries] = call<std::vector<fs::dirent>>(loop, [&](auto cb) { fs::readdir(loop, missing, std::move(cb)); });
  CHECK(dec == enoent);
  CHECK(entries.empty());
  auto [eec, empty_stat] = call<fs::stats>(loop, [&](auto cb) { fs::stat(loop, "", std::move(cb)); });
  CHECK(eec == enoent);
}

TEMPLATE_TEST_CASE("fs errors: permission denied", "[fs]", PHASELOOP_TEST_EXECUTOR_LOOPS) {
  // Root passes mode checks, and the tests run as root here and in CI, so a
  // root run checks in a forked child that drops to uid/gid 65534 (nobody)
  // with setuid; a non-root run checks directly. Either way a 0444 file
  // opened for writing and a mode-000 directory (read, written, or removed
  // with rm's recursive walk) must give EACCES.
  temp_dir dir;
  REQUIRE(::chmod(dir.path.c_str(), 0755) == 0);
  const std::string readonly = dir / "readonly";
  {
    TestType loop;
    REQUIRE_FALSE(call0(loop, [&](auto cb) { fs::write_file(loop, readonly, "x", std::move(cb)); }));
    REQUIRE_FALSE(call0(loop, [&](auto cb) { fs::chmod(loop, readonly, 0444u, std::move(cb)); }));
  }
  const std::string closed = dir / "closed";
  REQUIRE(::mkdir(closed.c_str(), 0) == 0);  // no access for anyone but root
  struct reopen {
    std::string path;
    ~reopen() { ::chmod(path.c_str(), 0700); }
  } reopen_closed{closed};

  // 0: all as expected; 1..: which check failed.
  auto checks = [&]() -> int {
    TestType loop;
    auto [oec, fd] = call<fs::file_descriptor>(loop, [&](auto cb) { fs::open(loop, readonly, "w", std::move(cb)); });
    if (oec != std::errc::permission_denied || fd != -1) return 10;
    if (call0(loop, [&](auto cb) { fs::write_file(loop, readonly, "y", std::move(cb)); }) != std::errc::permission_denied)
      return 11;
    if (call0(loop, [&](auto cb) { fs::append_file(loop, readonly, "y", std::move(cb)); }) != std::errc::permission_denied)
      return 12;
    if (call0(loop, [&](auto cb) { fs::access(loop, readonly, fs::constants::w_ok, std::move(cb)); }) != std::errc::permission_denied)
      return 13;
    auto [dec, entries] = call<std::vector<fs::dirent>>(loop, [&](auto cb) { fs::readdir(loop, closed, std::move(cb)); });
    if (dec != std::errc::permission_denied) return 14;
    if (call0(loop, [&](auto cb) { fs::write_file(loop, closed + "/f", "y", std::move(cb)); }) != std::errc::permission_denied)
      return 15;
    if (call0(loop, [&](auto cb) { fs::rm(loop, closed, {.recursive = true}, std::move(cb)); }) != std::errc::permission_denied)
      return 16;
    return 0;
  };

  if (::geteuid() != 0) {
    CHECK(checks() == 0);
    return;
  }
  std::cout.flush();  // the child must not print what the parent has buffered
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    int result = 3;
    try {
      result = checks();
    } catch (...) {
    }
    ::_exit(result);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEMPLATE_TEST_CASE("fs errors: a directory where a file is expected, a file where a directory is",
                   "[fs]", PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  temp_dir dir;
  auto [oec, fd] = call<fs::file_descriptor>(loop, [&](auto cb) { fs::open(loop, dir.path, "w", std::move(cb)); });
  CHECK(oec == std::errc::is_a_directory);
  auto [rec, text] = call<std::string>(loop, [&](auto cb) { fs::read_file(loop, dir.path, std::move(cb)); });
  CHECK(rec == std::errc::is_a_directory);
  CHECK(call0(loop, [&](auto cb) { fs::write_file(loop, dir.path, "x", std::move(cb)); }) == std::errc::is_a_directory);
  CHECK(call0(loop, [&](auto cb) { fs::unlink(loop, dir.path, std::move(cb)); }) != std::error_code{});
  CHECK(call0(loop, [&](auto cb) { fs::copyfile(loop, dir.path, dir / "c", std::move(cb)); }) == std::errc::is_a_directory);

  const std::string file = dir / "file";
  REQUIRE_FALSE(call0(loop, [&](auto cb) { fs::write_file(loop, file, "x", std::move(cb)); }));
  CHECK(call0(loop, [&](auto cb) { fs::rmdir(loop, file, std::move(cb)); }) == std::errc::not_a_directory);
  auto [dec, entries] = call<std::vector<fs::dirent>>(loop, [&](auto cb) { fs::readdir(loop, file, std::move(cb)); });
  CHECK(dec == std::errc::not_a_directory);
  CHECK(call0(loop, [&](auto cb) { fs::mkdir(loop, file + "/sub", fs::mkdir_options{.recursive = true}, std::move(cb)); }) ==
        std::errc::not_a_directory);
  CHECK(call0(loop, [&](auto cb) { fs::mkdir(loop, file, fs::mkdir_options{.recursive = true}, std::move(cb)); }) ==
        std::errc::file_exists);
  auto [sec, st] = call<fs::stats>(loop, [&](auto cb) { fs::stat(loop, file + "/x", std::move(cb)); });
  CHECK(sec == std::errc::not_a_directory);
}

TEMPLATE_TEST_CASE("fs: rm removes files, links and (recursive) trees, as Node's fs.rm", "[fs]",
                   PHASELOOP_TEST_EXECUTOR_LOOPS) {
  namespace sfs = std::filesystem;
  TestType loop;
  temp_dir dir;
  auto rm = [&](const std::string& path, fs::rm_options options) {
    return call0(loop, [&](auto cb) { fs::rm(loop, path, options, std::move(cb)); });
  };

  // A file; a missing path is ENOENT unless forced.
  const std::string file = dir / "file";
  std::ofstream(file) << "x";
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::rm(loop, file, std::move(cb)); }));
  CHECK_FALSE(sfs::exists(sfs::symlink_status(file)));
  CHECK(rm(file, {}) == std::errc::no_such_file_or_directory);
  CHECK(rm(file, {.recursive = true}) == std::errc::no_such_file_or_directory);
  CHECK_FALSE(rm(file, {.force = true}));
  CHECK_FALSE(rm(dir / "missing/below", {.recursive = true, .force = true}));
  CHECK(rm(std::string("bad\0path", 8), {.force = true}) == std::errc::invalid_argument);

  // A directory needs recursive (Node's ERR_FS_EISDIR), force or not.
  const std::string tree = dir / "tree";
  sfs::create_directories(tree + "/a/b/c");
  sfs::create_directory(tree + "/empty");
  std::ofstream(tree + "/top") << "1";
  std::ofstream(tree + "/a/b/c/deep") << "2";
  REQUIRE(::mkfifo((tree + "/a/fifo").c_str(), 0600) == 0);
  // Links inside the tree are removed, never followed.
  const std::string outside = dir / "outside";
  sfs::create_directory(outside);
  std::ofstream(outside + "/keep") << "3";
  sfs::create_directory_symlink(outside, tree + "/a/link-to-outside");
  sfs::create_symlink(outside + "/keep", tree + "/link-to-file");
  sfs::create_symlink(dir / "nowhere", tree + "/a/b/dangling");
  CHECK(rm(tree, {}) == std::errc::is_a_directory);
  CHECK(rm(tree, {.force = true}) == std::errc::is_a_directory);
  CHECK(sfs::exists(tree + "/a/b/c/deep"));
  CHECK_FALSE(rm(tree, {.recursive = true}));
  CHECK_FALSE(sfs::exists(sfs::symlink_status(tree)));
  CHECK(sfs::exists(outside + "/keep"));

  // A link to a directory, even with recursive, is the link alone.
  sfs::create_directory_symlink(outside, dir / "dirlink");
  CHECK_FALSE(rm(dir / "dirlink", {.recursive = true}));
  CHECK_FALSE(sfs::exists(sfs::symlink_status(dir / "dirlink")));
  CHECK(sfs::exists(outside + "/keep"));

  // recursive on a file removes the file; an empty directory goes too.
  std::ofstream(dir / "plain") << "4";
  CHECK_FALSE(rm(dir / "plain", {.recursive = true}));
  CHECK_FALSE(sfs::exists(dir / "plain"));
  CHECK_FALSE(rm(outside + "/keep", {}));
  CHECK_FALSE(rm(outside, {.recursive = true}));
  CHECK_FALSE(sfs::exists(outside));

  // The promise form.
  sfs::create_directories(dir / "p/q");
  std::vector<std::string> got;
  fs::promises::rm(loop, dir / "p")
      .catch_([&](const std::system_error& e) {
        got.push_back(e.code() == std::errc::is_a_directory ? "EISDIR" : "other");
        return fs::promises::rm(loop, dir / "p", {.recursive = true});
      })
      .then([&] { got.push_back(sfs::exists(dir / "p") ? "still there" : "removed"); });
  loop.run();
  CHECK(got == std::vector<std::string>{"EISDIR", "removed"});
}

TEMPLATE_TEST_CASE("fs: long paths work or fail with ENAMETOOLONG, never truncated", "[fs]", PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  temp_dir dir;
  // A path well past any small fixed buffer (about 2 KiB, 200-byte components).
  std::string deep = dir.path;
  for (int i = 0; i < 10; ++i) deep += "/" + std::string(200, static_cast<char>('a' + i));
  REQUIRE(deep.size() > 2000);
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::mkdir(loop, deep, fs::mkdir_options{.recursive = true}, std::move(cb)); }));
  const std::string file = deep + "/file";
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::write_file(loop, file, "deep", std::move(cb)); }));
  auto [rec, text] = call<std::string>(loop, [&](auto cb) { fs::read_file(loop, file, std::move(cb)); });
  CHECK_FALSE(rec);
  CHECK(text == "deep");
  auto [rpec, real] = call<std::string>(loop, [&](auto cb) { fs::realpath(loop, file, std::move(cb)); });
  CHECK_FALSE(rpec);
  CHECK(real.size() >= file.size() - dir.path.size());
  CHECK(real.ends_with(std::string(200, 'j') + "/file"));

  // A symbolic link whose target is 3000 bytes reads back whole.
  const std::string target(3000, 't');
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::symlink(loop, target, dir / "long-link", std::move(cb)); }));
  auto [lec, back] = call<std::string>(loop, [&](auto cb) { fs::readlink(loop, dir / "long-link", std::move(cb)); });
  CHECK_FALSE(lec);
  CHECK(back == target);

  // Too long for the system: a 5000-byte path, and a 300-byte component.
  const std::string too_long = dir.path + "/" + std::string(5000, 'x');
  const std::string long_name = dir.path + "/" + std::string(300, 'y');
  for (const std::string& p : {too_long, long_name}) {
    auto [sec, st] = call<fs::stats>(loop, [&](auto cb) { fs::stat(loop, p, std::move(cb)); });
    CHECK(sec == std::errc::filename_too_long);
    auto [oec, fd] = call<fs::file_descriptor>(loop, [&](auto cb) { fs::open(loop, p, "w", std::move(cb)); });
    CHECK(oec == std::errc::filename_too_long);
    CHECK(call0(loop, [&](auto cb) { fs::write_file(loop, p, "x", std::move(cb)); }) == std::errc::filename_too_long);
    CHECK(call0(loop, [&](auto cb) { fs::mkdir(loop, p, fs::mkdir_options{.recursive = true}, std::move(cb)); }) ==
          std::errc::filename_too_long);
  }
}

TEMPLATE_TEST_CASE("fs errors: closed and invalid descriptors, bad arguments", "[fs]", PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  temp_dir dir;
  const std::string file = dir / "f";
  REQUIRE_FALSE(call0(loop, [&](auto cb) { fs::write_file(loop, file, "abc", std::move(cb)); }));
  auto fd_result = call<fs::file_descriptor>(loop, [&](auto cb) { fs::open(loop, file, "r+", std::move(cb)); });
  const auto oec = fd_result.first;
  const auto fd = fd_result.second;
  REQUIRE_FALSE(oec);
  REQUIRE_FALSE(call0(loop, [&](auto cb) { fs::close(loop, fd, std::move(cb)); }));

  const auto ebadf = std::errc::bad_file_descriptor;
  std::array<std::byte, 8> buf{};
  for (fs::file_descriptor bad : {fd, -1, 1 << 30}) {
    INFO("descriptor " << bad);
    auto [rec, n] = call<std::size_t>(loop, [&](auto cb) { fs::read(loop, bad, std::span(buf), std::move(cb)); });
    CHECK(rec == ebadf);
    CHECK(n == 0);
    auto [wec, w] = call<std::size_t>(loop, [&](auto cb) { fs::write(loop, bad, bytes_of("x"), std::uint64_t{0}, std::move(cb)); });
    CHECK(wec == ebadf);
    auto [sec, st] = call<fs::stats>(loop, [&](auto cb) { fs::fstat(loop, bad, std::move(cb)); });
    CHECK(sec == ebadf);
    CHECK(call0(loop, [&](auto cb) { fs::ftruncate(loop, bad, std::move(cb)); }) == ebadf);
    CHECK(call0(loop, [&](auto cb) { fs::fsync(loop, bad, std::move(cb)); }) == ebadf);
    CHECK(call0(loop, [&](auto cb) { fs::fdatasync(loop, bad, std::move(cb)); }) == ebadf);
    CHECK(call0(loop, [&](auto cb) { fs::close(loop, bad, std::move(cb)); }) == ebadf);
  }

  const auto einval = std::errc::invalid_argument;
  const std::string with_nul = file + std::string("\0.txt", 5);
  auto [nec, st] = call<fs::stats>(loop, [&](auto cb) { fs::stat(loop, with_nul, std::move(cb)); });
  CHECK(nec == einval);
  CHECK(call0(loop, [&](auto cb) { fs::unlink(loop, with_nul, std::move(cb)); }) == einval);
  CHECK(call0(loop, [&](auto cb) { fs::write_file(loop, with_nul, "x", std::move(cb)); }) == einval);
  CHECK(std::filesystem::exists(file));  // the cut-short name was never touched
  auto [fec, ffd] = call<fs::file_descriptor>(loop, [&](auto cb) { fs::open(loop, file, "rw", std::move(cb)); });
  CHECK(fec == einval);  // not one of Node's flags
  auto fd2_result = call<fs::file_descriptor>(loop, [&](auto cb) { fs::open(loop, file, "r", std::move(cb)); });
  const auto o2 = fd2_result.first;
  const auto fd2 = fd2_result.second;
  REQUIRE_FALSE(o2);
  auto [pec, pn] = call<std::size_t>(loop, [&](auto cb) { fs::read(loop, fd2, std::span(buf), std::uint64_t{1} << 63, std::move(cb)); });
  CHECK(pec == einval);
  CHECK(call0(loop, [&](auto cb) { fs::copyfile(loop, file, dir / "c", 0x40, std::move(cb)); }) == einval);
  CHECK_FALSE(call0(loop, [&](auto cb) { fs::close(loop, fd2, std::move(cb)); }));
}

TEMPLATE_TEST_CASE("fs: a completion runs in the poll phase: immediate before timeout(0)", "[fs]",
                   PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  std::vector<std::string> trace;
  fs::stat(loop, ".", [&](std::error_code ec, fs::stats st) {
    trace.push_back(!ec && st.is_directory() ? "stat" : "stat failed");
    loop.set_timeout([&] { trace.emplace_back("timeout"); }, 0ms);
    loop.set_immediate([&] { trace.emplace_back("immediate"); });
    loop.queue_microtask([&] { trace.emplace_back("microtask"); });
    loop.next_tick([&] { trace.emplace_back("tick"); });
  });
  trace.emplace_back("sync");
  loop.run();
  CHECK(trace == std::vector<std::string>{"sync", "stat", "tick", "microtask", "immediate", "timeout"});
}

TEST_CASE("fs: four slow jobs occupy the pool, file operations still complete", "[fs][executor]") {
  pool_loop loop(loop_options{.executor = {.threads = 4}});
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> slow_running{0};
  int slow_done = 0;
  for (int i = 0; i < 4; ++i)
    loop.queue_work(
        [&] {
          slow_running.fetch_add(1);
          std::unique_lock lock(m);
          cv.wait(lock, [&] { return release; });
        },
        [&](std::error_code) { ++slow_done; }, work_kind::slow);
  temp_dir dir;
  int fs_done = 0;
  constexpr int operations = 20;
  for (int i = 0; i < operations; ++i)
    fs::write_file(loop, dir / std::to_string(i), "x", [&, i](std::error_code ec) {
      CHECK_FALSE(ec);
      fs::stat(loop, dir / std::to_string(i), [&](std::error_code sec, fs::stats st) {
        CHECK_FALSE(sec);
        CHECK(st.size == 1);
        if (++fs_done == operations) {
          CHECK(slow_running.load() == 2);  // the cap: two slow jobs wait for a worker
          CHECK(slow_done == 0);
          {
            std::lock_guard lock(m);
            release = true;
          }
          cv.notify_all();
        }
      });
    });
  loop.run();
  CHECK(fs_done == operations);
  CHECK(slow_done == 4);
}

TEST_CASE("fs: a queued call can be cancelled; its callback gets operation_canceled", "[fs][executor]") {
  pool_loop loop(loop_options{.executor = {.threads = 1}});
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::atomic<bool> started{false};
  loop.queue_work(
      [&] {
        started = true;
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return release; });
      },
      [](std::error_code) {});
  std::optional<std::error_code> result;
  auto h = fs::stat(loop, ".", [&](std::error_code ec, fs::stats) { result = ec; });
  while (!started) std::this_thread::yield();
  CHECK_FALSE(loop.cancel(h));
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  loop.run();
  REQUIRE(result.has_value());
  CHECK(*result == std::errc::operation_canceled);
}

TEST_CASE("fs: destroying the loop with calls pending frees their state", "[fs][executor]") {
  temp_dir dir;
  bool called = false;
  {
    pool_loop loop(loop_options{.executor = {.threads = 1}});
    for (int i = 0; i < 50; ++i)
      fs::write_file(loop, dir / std::to_string(i), std::string(1000, 'z'),
                     [&](std::error_code) { called = true; });
  }
  CHECK_FALSE(called);
}

#endif  // !defined(_WIN32)
