#pragma once
// phaseloop::fs: Node's fs module on the loop's executor.
//
// Every function queues one blocking system call (or a short sequence of
// them) on the loop's executor and calls an err-first callback on the loop
// thread, in the poll phase: `cb(std::error_code)` for operations without a
// result, `cb(std::error_code, result)` otherwise. Errors are the system's
// (compare with std::errc: `ec == std::errc::no_such_file_or_directory`);
// nothing throws, and bad input (a closed descriptor, a path with a NUL in
// it, an offset past 2^63 - 1) gives an error code. Each function returns the
// loop's work_handle, so loop.cancel(h) can take back a call that has not
// started (the callback then gets operation_canceled).
//
// Paths are std::string values owned by the call: no fixed-size buffers, so a
// long path works or fails with ENAMETOOLONG from the system, never truncated.
//
// Buffers: read() and write() take a caller-owned std::span; the memory must
// stay valid and untouched until the callback has run (or the promise has
// settled), or until the loop is destroyed (which waits for a running call).
// read_file() and write_file() own their data.
//
// Promise forms live in phaseloop::fs::promises (Node's fs.promises): the same
// functions without the callback, returning promise<T> that fulfils with the
// callback's result (promise<void> for operations without one) or rejects
// with std::system_error(ec).
//
// POSIX only for now: on Windows this header declares nothing.

#include <phaseloop/version.hpp>
#include <phaseloop/error.hpp>

#if !defined(_WIN32)

#include <phaseloop/detail/blocking_call.hpp>
#include <phaseloop/detail/posix/system.hpp>
#include <phaseloop/inbox.hpp>
#include <phaseloop/promise.hpp>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/sysmacros.h>
#endif

namespace phaseloop::fs {

/// A file descriptor, as Node's fs gives them.
using file_descriptor = int;

/// The most read_file() reads into one buffer: 2 GiB - 1 bytes, Node's
/// kIoMaxLength (beyond it Node's readFile fails with ERR_FS_FILE_TOO_LARGE).
inline constexpr std::size_t max_read_file_size = 2147483647;

/// Node's fs.constants that have no <fcntl.h> spelling.
namespace constants {
inline constexpr int f_ok = F_OK;  ///< access(): the file exists
inline constexpr int r_ok = R_OK;  ///< access(): readable
inline constexpr int w_ok = W_OK;  ///< access(): writable
inline constexpr int x_ok = X_OK;  ///< access(): executable
inline constexpr int copyfile_excl = 1;  ///< copyfile(): fail with EEXIST if the destination exists
}  // namespace constants

enum class file_type : std::uint8_t {
  unknown,
  file,
  directory,
  symlink,
  block_device,
  character_device,
  fifo,
  socket,
};

/// What stat, lstat and fstat report (Node's fs.Stats); a plain aggregate.
struct stats {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  std::uint32_t mode = 0;  ///< type and permission bits (st_mode)
  std::uint64_t nlink = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint64_t rdev = 0;
  std::uint64_t size = 0;
  std::uint64_t blksize = 0;
  std::uint64_t blocks = 0;
  std::chrono::system_clock::time_point atime{};
  std::chrono::system_clock::time_point mtime{};
  std::chrono::system_clock::time_point ctime{};
  std::chrono::system_clock::time_point birthtime{};  ///< epoch when the system does not say

  [[nodiscard]] file_type type() const noexcept {
    switch (mode & S_IFMT) {
      case S_IFREG: return file_type::file;
      case S_IFDIR: return file_type::directory;
      case S_IFLNK: return file_type::symlink;
      case S_IFBLK: return file_type::block_device;
      case S_IFCHR: return file_type::character_device;
      case S_IFIFO: return file_type::fifo;
      case S_IFSOCK: return file_type::socket;
      default: return file_type::unknown;
    }
  }
  [[nodiscard]] bool is_file() const noexcept { return type() == file_type::file; }
  [[nodiscard]] bool is_directory() const noexcept { return type() == file_type::directory; }
  [[nodiscard]] bool is_symbolic_link() const noexcept { return type() == file_type::symlink; }
  [[nodiscard]] bool is_fifo() const noexcept { return type() == file_type::fifo; }
  [[nodiscard]] bool is_socket() const noexcept { return type() == file_type::socket; }
  [[nodiscard]] bool is_block_device() const noexcept { return type() == file_type::block_device; }
  [[nodiscard]] bool is_character_device() const noexcept {
    return type() == file_type::character_device;
  }
};

/// One entry of readdir() (Node's fs.Dirent); "." and ".." are never listed.
struct dirent {
  std::string name;
  file_type type = file_type::unknown;

  [[nodiscard]] bool is_file() const noexcept { return type == file_type::file; }
  [[nodiscard]] bool is_directory() const noexcept { return type == file_type::directory; }
  [[nodiscard]] bool is_symbolic_link() const noexcept { return type == file_type::symlink; }
};

/// mkdir()'s options: `recursive` creates missing parents and accepts an
/// existing directory (mkdir -p).
struct mkdir_options {
  bool recursive = false;
  unsigned mode = 0777;
};

/// rm()'s options (Node's fs.rm): `recursive` removes a directory and
/// everything in it (symbolic links are removed, never followed); `force`
/// makes a path that does not exist a success.
struct rm_options {
  bool recursive = false;
  bool force = false;
};

}  // namespace phaseloop::fs

namespace phaseloop::detail::fs_ops {
using fs::dirent;
using fs::file_descriptor;
using fs::file_type;
using fs::rm_options;
using fs::stats;
namespace constants = fs::constants;

using posix::errno_code;

inline std::error_code invalid_argument() noexcept {
  return std::make_error_code(std::errc::invalid_argument);
}

/// A path the system could only misread: one with a NUL inside (it would be
/// cut short). Empty paths are left to the system (ENOENT).
inline bool bad_path(const std::string& path) noexcept {
  return path.find('\0') != std::string::npos;
}

/// Offsets and lengths above what off_t holds are rejected, never wrapped.
inline bool bad_offset(std::uint64_t value) noexcept {
  return value > static_cast<std::uint64_t>(INT64_MAX);
}

/// Node's open flags ("r", "w+", "ax", ...) as O_* bits, or -1.
inline int parse_flags(std::string_view flags) noexcept {
  // Node accepts the 's' (synchronous) and 'x' (exclusive) letters on either side.
  if (flags == "r") return O_RDONLY;
  if (flags == "rs" || flags == "sr") return O_RDONLY | O_SYNC;
  if (flags == "r+") return O_RDWR;
  if (flags == "rs+" || flags == "sr+") return O_RDWR | O_SYNC;
  if (flags == "w") return O_TRUNC | O_CREAT | O_WRONLY;
  if (flags == "wx" || flags == "xw") return O_TRUNC | O_CREAT | O_WRONLY | O_EXCL;
  if (flags == "w+") return O_TRUNC | O_CREAT | O_RDWR;
  if (flags == "wx+" || flags == "xw+") return O_TRUNC | O_CREAT | O_RDWR | O_EXCL;
  if (flags == "a") return O_APPEND | O_CREAT | O_WRONLY;
  if (flags == "ax" || flags == "xa") return O_APPEND | O_CREAT | O_WRONLY | O_EXCL;
  if (flags == "as" || flags == "sa") return O_APPEND | O_CREAT | O_WRONLY | O_SYNC;
  if (flags == "a+") return O_APPEND | O_CREAT | O_RDWR;
  if (flags == "ax+" || flags == "xa+") return O_APPEND | O_CREAT | O_RDWR | O_EXCL;
  if (flags == "as+" || flags == "sa+") return O_APPEND | O_CREAT | O_RDWR | O_SYNC;
  return -1;
}

/// A file time (seconds and nanoseconds since 1970) as a system_clock time
/// point, saturated to time_point::min() and max() where the clock cannot
/// hold it (with nanosecond ticks: before 1677 or after 2262), never wrapped.
inline std::chrono::system_clock::time_point to_time_point(std::int64_t sec, std::int64_t nsec) noexcept {
  using namespace std::chrono;
  using time_point = system_clock::time_point;
  using duration = system_clock::duration;
  constexpr std::int64_t max_sec = duration_cast<seconds>(duration::max()).count();
  constexpr std::int64_t min_sec = duration_cast<seconds>(duration::min()).count();
  if (sec > max_sec) return time_point::max();
  if (sec < min_sec) return time_point::min();
  // Whole seconds within the clock's range convert exactly; the fraction
  // (normally in [0, 1 s)) is added only where it fits.
  if (nsec >= 1'000'000'000 || nsec <= -1'000'000'000) nsec %= 1'000'000'000;
  const duration base = duration_cast<duration>(seconds(sec));
  const duration extra = duration_cast<duration>(nanoseconds(nsec));
  if (extra > duration::zero() && base > duration::max() - extra) return time_point::max();
  if (extra < duration::zero() && base < duration::min() - extra) return time_point::min();
  return time_point(base + extra);
}

inline struct timespec to_timespec(std::chrono::system_clock::time_point t) noexcept {
  using namespace std::chrono;
  const auto ns = duration_cast<nanoseconds>(t.time_since_epoch()).count();
  std::int64_t sec = ns / 1'000'000'000;
  std::int64_t rem = ns % 1'000'000'000;
  if (rem < 0) {  // before 1970: the nanoseconds field stays in [0, 1e9)
    rem += 1'000'000'000;
    --sec;
  }
  struct timespec ts{};
  ts.tv_sec = phaseloop::detail::posix::sys_cast<time_t>(sec);
  ts.tv_nsec = phaseloop::detail::posix::sys_cast<decltype(ts.tv_nsec)>(rem);  // long, or long long on x32
  return ts;
}

inline stats from_stat(const struct stat& st) noexcept {
  stats s;
  s.dev = static_cast<std::uint64_t>(st.st_dev);
  s.ino = static_cast<std::uint64_t>(st.st_ino);
  s.mode = static_cast<std::uint32_t>(st.st_mode);
  s.nlink = static_cast<std::uint64_t>(st.st_nlink);
  s.uid = static_cast<std::uint32_t>(st.st_uid);
  s.gid = static_cast<std::uint32_t>(st.st_gid);
  s.rdev = static_cast<std::uint64_t>(st.st_rdev);
  s.size = static_cast<std::uint64_t>(st.st_size);
  s.blksize = static_cast<std::uint64_t>(st.st_blksize);
  s.blocks = static_cast<std::uint64_t>(st.st_blocks);
#if defined(__APPLE__)
  s.atime = to_time_point(st.st_atimespec.tv_sec, st.st_atimespec.tv_nsec);
  s.mtime = to_time_point(st.st_mtimespec.tv_sec, st.st_mtimespec.tv_nsec);
  s.ctime = to_time_point(st.st_ctimespec.tv_sec, st.st_ctimespec.tv_nsec);
  s.birthtime = to_time_point(st.st_birthtimespec.tv_sec, st.st_birthtimespec.tv_nsec);
#else
  s.atime = to_time_point(st.st_atim.tv_sec, st.st_atim.tv_nsec);
  s.mtime = to_time_point(st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  s.ctime = to_time_point(st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
#endif
  return s;
}

/// stat/lstat/fstat in one: `path` relative to `dirfd`, or the descriptor
/// itself with an empty path. Uses statx on Linux for the birth time.
inline std::error_code do_stat(int dirfd, const char* path, bool follow, stats& out) noexcept {
#if defined(__linux__) && defined(STATX_BTIME)
  struct statx stx{};
  int flags = follow ? 0 : AT_SYMLINK_NOFOLLOW;
  if (*path == '\0') flags |= AT_EMPTY_PATH;
  if (::statx(dirfd, path, flags, STATX_BASIC_STATS | STATX_BTIME, &stx) == 0) {
    out = stats{};
    out.dev = phaseloop::detail::posix::sys_cast<std::uint64_t>(makedev(stx.stx_dev_major, stx.stx_dev_minor));
    out.ino = stx.stx_ino;
    out.mode = stx.stx_mode;
    out.nlink = stx.stx_nlink;
    out.uid = stx.stx_uid;
    out.gid = stx.stx_gid;
    out.rdev = phaseloop::detail::posix::sys_cast<std::uint64_t>(makedev(stx.stx_rdev_major, stx.stx_rdev_minor));
    out.size = stx.stx_size;
    out.blksize = stx.stx_blksize;
    out.blocks = stx.stx_blocks;
    out.atime = to_time_point(stx.stx_atime.tv_sec, stx.stx_atime.tv_nsec);
    out.mtime = to_time_point(stx.stx_mtime.tv_sec, stx.stx_mtime.tv_nsec);
    out.ctime = to_time_point(stx.stx_ctime.tv_sec, stx.stx_ctime.tv_nsec);
    if ((stx.stx_mask & STATX_BTIME) != 0)
      out.birthtime = to_time_point(stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec);
    return {};
  }
  if (errno != ENOSYS && errno != EPERM) return errno_code();  // EPERM: some seccomp filters
#endif
  struct stat st{};
  int r;
  if (*path == '\0')
    r = ::fstat(dirfd, &st);
  else
    r = ::fstatat(dirfd, path, &st, follow ? 0 : AT_SYMLINK_NOFOLLOW);
  if (r != 0) return errno_code();
  out = from_stat(st);
  return {};
}

inline std::error_code do_open(const std::string& path, int flags, unsigned mode, int& fd) noexcept {
  fd = -1;
  if (bad_path(path) || flags == -1) return invalid_argument();  // -1: unknown Node flags
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, phaseloop::detail::posix::sys_cast<mode_t>(mode));
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    fd = -1;
    return errno_code();
  }
  return {};
}

inline std::error_code do_close(int fd) noexcept {
  // Never retried on EINTR: on Linux the descriptor is gone either way.
  if (::close(fd) != 0 && errno != EINTR) return errno_code();
  return {};
}

/// read or pread, retried on EINTR; `position` < 0 means the current position.
inline std::error_code do_read(int fd, std::span<std::byte> buffer, std::int64_t position,
                               std::size_t& n) noexcept {
  ssize_t r;
  do {
    r = position < 0 ? ::read(fd, buffer.data(), buffer.size())
                     : ::pread(fd, buffer.data(), buffer.size(), phaseloop::detail::posix::sys_cast<off_t>(position));
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    n = 0;
    return errno_code();
  }
  n = static_cast<std::size_t>(r);
  return {};
}

/// write or pwrite, retried on EINTR; `position` < 0 means the current position.
inline std::error_code do_write(int fd, std::span<const std::byte> buffer, std::int64_t position,
                                std::size_t& n) noexcept {
  ssize_t r;
  do {
    r = position < 0 ? ::write(fd, buffer.data(), buffer.size())
                     : ::pwrite(fd, buffer.data(), buffer.size(), phaseloop::detail::posix::sys_cast<off_t>(position));
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    n = 0;
    return errno_code();
  }
  n = static_cast<std::size_t>(r);
  return {};
}

/// Write all of `data` at the current position.
inline std::error_code write_all(int fd, std::span<const std::byte> data) noexcept {
  while (!data.empty()) {
    std::size_t n = 0;
    if (std::error_code ec = do_write(fd, data, -1, n)) return ec;
    data = data.subspan(n);
  }
  return {};
}

inline bool is_directory(const std::string& path) noexcept {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

/// mkdir -p: create what is missing of `path`, accept an existing directory.
inline std::error_code mkdir_recursive(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0) return {};
  const int e = errno;
  if (e == EEXIST) return is_directory(path) ? std::error_code{} : errno_code(EEXIST);
  if (e != ENOENT) return errno_code(e);
  // Create the parent first. Trailing slashes do not name a parent.
  std::size_t end = path.size();
  while (end > 0 && path[end - 1] == '/') --end;
  const std::size_t slash = path.find_last_of('/', end == 0 ? 0 : end - 1);
  if (slash == std::string::npos || slash == 0) return errno_code(ENOENT);
  std::size_t parent_end = slash;
  while (parent_end > 0 && path[parent_end - 1] == '/') --parent_end;
  if (parent_end == 0) return errno_code(ENOENT);
  if (std::error_code ec = mkdir_recursive(path.substr(0, parent_end), mode)) return ec;
  if (::mkdir(path.c_str(), mode) == 0) return {};
  if (errno == EEXIST && is_directory(path)) return {};
  return errno_code();
}

/// Remove the directory `name` in `dirfd` and everything under it, without
/// following symbolic links: each level is opened with O_NOFOLLOW relative to
/// its parent's descriptor, so a directory swapped for a link during the walk
/// is unlinked, not entered. One descriptor stays open per level.
inline std::error_code remove_tree(int dirfd, const char* name) {
  const int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) return {};  // already gone
    // Not a directory (any more): a file or a link in its place.
    if (e == ENOTDIR || e == ELOOP)
      return ::unlinkat(dirfd, name, 0) == 0 || errno == ENOENT ? std::error_code{} : errno_code();
    return errno_code(e);
  }
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    const int e = errno;
    ::close(fd);
    return errno_code(e);
  }
  struct closer {
    DIR* d;
    ~closer() { ::closedir(d); }
  } guard{dir};
  for (;;) {
    errno = 0;
    const ::dirent* entry = ::readdir(dir);
    if (entry == nullptr) {
      if (errno != 0) return errno_code();
      break;
    }
    const std::string_view child(entry->d_name);
    if (child == "." || child == "..") continue;
    bool is_dir = entry->d_type == DT_DIR;
    if (entry->d_type == DT_UNKNOWN) {  // some file systems do not say: ask lstat
      struct stat st{};
      if (::fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        return errno_code();
      }
      is_dir = S_ISDIR(st.st_mode);
    }
    if (is_dir) {
      if (std::error_code ec = remove_tree(fd, entry->d_name)) return ec;
    } else if (::unlinkat(fd, entry->d_name, 0) != 0) {
      const int e = errno;
      if (e == EISDIR) {  // replaced by a directory since readdir
        if (std::error_code ec = remove_tree(fd, entry->d_name)) return ec;
      } else if (e != ENOENT) {
        return errno_code(e);
      }
    }
  }
  return ::unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT ? std::error_code{}
                                                                        : errno_code();
}

/// Node's fs.rm: a file or link is unlinked; a directory needs `recursive`
/// (else EISDIR, Node's ERR_FS_EISDIR); `force` ignores a missing path.
inline std::error_code do_rm(const std::string& path, rm_options options) {
  if (bad_path(path)) return invalid_argument();
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    const int e = errno;
    return e == ENOENT && options.force ? std::error_code{} : errno_code(e);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) == 0) return {};
    const int e = errno;
    return e == ENOENT && options.force ? std::error_code{} : errno_code(e);
  }
  if (!options.recursive) return errno_code(EISDIR);
  std::error_code ec = remove_tree(AT_FDCWD, path.c_str());
  if (ec == std::errc::no_such_file_or_directory && options.force) return {};
  return ec;
}

inline file_type from_dirent_type(unsigned char t) noexcept {
  switch (t) {
    case DT_REG: return file_type::file;
    case DT_DIR: return file_type::directory;
    case DT_LNK: return file_type::symlink;
    case DT_BLK: return file_type::block_device;
    case DT_CHR: return file_type::character_device;
    case DT_FIFO: return file_type::fifo;
    case DT_SOCK: return file_type::socket;
    default: return file_type::unknown;
  }
}

inline std::error_code do_readdir(const std::string& path, std::vector<fs::dirent>& out) {
  if (bad_path(path)) return invalid_argument();
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return errno_code();
  struct closer {
    DIR* d;
    ~closer() { ::closedir(d); }
  } guard{dir};
  for (;;) {
    errno = 0;
    const ::dirent* e = ::readdir(dir);
    if (e == nullptr) {
      if (errno != 0) return errno_code();
      return {};
    }
    const std::string_view name(e->d_name);
    if (name == "." || name == "..") continue;
    file_type type = from_dirent_type(e->d_type);
    if (type == file_type::unknown) {  // some file systems do not say: ask lstat
      struct stat st{};
      if (::fstatat(::dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        type = from_stat(st).type();
    }
    out.push_back(fs::dirent{std::string(name), type});
  }
}

inline std::error_code do_readlink(const std::string& path, std::string& out) {
  if (bad_path(path)) return invalid_argument();
  std::size_t size = 256;
  for (;;) {
    out.resize(size);
    const ssize_t n = ::readlink(path.c_str(), out.data(), out.size());
    if (n < 0) {
      out.clear();
      return errno_code();
    }
    if (static_cast<std::size_t>(n) < out.size()) {  // it fit: no truncation
      out.resize(static_cast<std::size_t>(n));
      return {};
    }
    size *= 2;
  }
}

inline std::error_code do_realpath(const std::string& path, std::string& out) {
  if (bad_path(path)) return invalid_argument();
  char* resolved = ::realpath(path.c_str(), nullptr);  // allocated: no PATH_MAX buffer
  if (resolved == nullptr) return errno_code();
  out = resolved;
  std::free(resolved);  // NOLINT(cppcoreguidelines-no-malloc): realpath's contract
  return {};
}

inline std::error_code do_mkdtemp(const std::string& prefix, std::string& out) {
  if (bad_path(prefix)) return invalid_argument();
  std::string path = prefix + "XXXXXX";
  if (::mkdtemp(path.data()) == nullptr) return errno_code();
  out = std::move(path);
  return {};
}

inline std::error_code do_copyfile(const std::string& from, const std::string& to, int flags) {
  if (bad_path(from) || bad_path(to)) return invalid_argument();
  if ((flags & ~constants::copyfile_excl) != 0) return invalid_argument();
  int src = -1;
  if (std::error_code ec = do_open(from, O_RDONLY, 0, src)) return ec;
  struct closer {
    int fd;
    ~closer() {
      if (fd >= 0) ::close(fd);
    }
  } src_guard{src};
  struct stat st{};
  if (::fstat(src, &st) != 0) return errno_code();
  if (S_ISDIR(st.st_mode)) return errno_code(EISDIR);
  const int dst_flags = O_WRONLY | O_CREAT | ((flags & constants::copyfile_excl) ? O_EXCL : 0);
  int dst = -1;
  if (std::error_code ec = do_open(to, dst_flags, st.st_mode & 07777, dst)) return ec;
  closer dst_guard{dst};
  struct stat dst_st{};
  if (::fstat(dst, &dst_st) != 0) return errno_code();
  if (dst_st.st_dev == st.st_dev && dst_st.st_ino == st.st_ino) return {};  // the same file
  if (::ftruncate(dst, 0) != 0) return errno_code();
  if (::fchmod(dst, st.st_mode & 07777) != 0) return errno_code();
  std::vector<std::byte> buffer(64 * 1024);
  for (;;) {
    std::size_t n = 0;
    if (std::error_code ec = do_read(src, buffer, -1, n)) return ec;
    if (n == 0) break;
    if (std::error_code ec = write_all(dst, std::span<const std::byte>(buffer.data(), n)))
      return ec;
  }
  dst_guard.fd = -1;
  if (::close(dst) != 0 && errno != EINTR) return errno_code();
  return {};
}

/// Read a whole file, whatever its reported size (files under /proc say 0),
/// up to `limit` bytes: a file that says it is larger, or a source that goes
/// on past it (/dev/zero, a FIFO), gives file_too_large. On any error `out`
/// is left empty: never a value together with an error.
template <class Result>
std::error_code do_read_file(const std::string& path, Result& out,
                             std::size_t limit = fs::max_read_file_size) {
  out = Result{};
  const std::size_t cap = limit < out.max_size() - 1 ? limit : out.max_size() - 1;
  int fd = -1;
  if (std::error_code ec = do_open(path, O_RDONLY, 0, fd)) return ec;
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  struct stat st{};
  if (::fstat(fd, &st) != 0) return errno_code();
  if (S_ISDIR(st.st_mode)) return errno_code(EISDIR);
  if (st.st_size > 0 && static_cast<std::uint64_t>(st.st_size) > cap)
    return phaseloop::errc::file_too_large;  // known too large before reading
  // Room for one byte more than the file says (or than the limit), so the
  // end of file is seen without growing, and a source going on past the
  // limit is caught with at most limit + 1 bytes held.
  const std::size_t initial = st.st_size > 0 ? static_cast<std::size_t>(st.st_size) + 1 : 4096;
  std::size_t used = 0;
  try {
    out.resize(initial < cap + 1 ? initial : cap + 1);
    for (;;) {
      std::size_t n = 0;
      std::span<std::byte> free_space(reinterpret_cast<std::byte*>(out.data()) + used,
                                      out.size() - used);
      if (std::error_code ec = do_read(fd, free_space, -1, n)) {
        out = Result{};
        return ec;
      }
      if (n == 0) break;
      used += n;
      if (used > cap) {
        out = Result{};
        return phaseloop::errc::file_too_large;
      }
      if (used == out.size()) {
        const std::size_t grown = out.size() <= (cap + 1) / 2 ? out.size() * 2 : cap + 1;
        out.resize(grown);
      }
    }
    out.resize(used);
  } catch (const std::bad_alloc&) {
    out = Result{};
    return std::make_error_code(std::errc::not_enough_memory);
  }
  return {};
}

inline std::error_code do_write_file(const std::string& path, std::span<const std::byte> data,
                                     int flags, unsigned mode) {
  int fd = -1;
  if (std::error_code ec = do_open(path, flags, mode, fd)) return ec;
  std::error_code ec = write_all(fd, data);
  if (::close(fd) != 0 && errno != EINTR && !ec) ec = errno_code();
  return ec;
}

/// Queue a file-system call on the executor (fs calls are fast work).
template <class T, class Loop, class Op, class Cb>
auto queue(Loop& loop, Op op, Cb cb) {
  static_assert(phaseloop::detail::err_first_callback<Cb, T> || phaseloop::detail::is_promise_token<Cb>,
                "fs: the callback must accept (std::error_code) for operations without a "
                "result, (std::error_code, result) otherwise, or be phaseloop::use_promise");
  return phaseloop::detail::queue_blocking<T>(loop, work_kind::fast, std::move(op), std::move(cb));
}

}  // namespace phaseloop::detail::fs_ops

namespace phaseloop::fs {

// The operations. Each one is `template <class Loop, class Cb>`; it returns
// the loop's work_handle. Callback shapes are given per function.

/// Open `path` with O_* `flags` (O_CLOEXEC is always added) and `mode` for a
/// created file. cb(error_code, file_descriptor); the descriptor is -1 on error.
template <class Loop, class Cb>
auto open(Loop& loop, std::string path, int flags, unsigned mode, Cb cb) {
  return detail::fs_ops::queue<file_descriptor>(
      loop,
      [path = std::move(path), flags, mode](file_descriptor& fd) {
        return detail::fs_ops::do_open(path, flags, mode, fd);
      },
      std::move(cb));
}

/// Open with O_* `flags`; created files get mode 0666 (less the umask).
template <class Loop, class Cb>
auto open(Loop& loop, std::string path, int flags, Cb cb) {
  return fs::open(loop, std::move(path), flags, 0666u, std::move(cb));
}

/// Open with Node's flags: "r", "r+", "rs+", "w", "wx", "w+", "wx+", "a",
/// "ax", "as", "a+", "ax+", "as+"; anything else gives invalid_argument.
template <class Loop, class Cb>
auto open(Loop& loop, std::string path, std::string_view flags, unsigned mode, Cb cb) {
  return fs::open(loop, std::move(path), detail::fs_ops::parse_flags(flags), mode, std::move(cb));
}

template <class Loop, class Cb>
auto open(Loop& loop, std::string path, std::string_view flags, Cb cb) {
  return fs::open(loop, std::move(path), detail::fs_ops::parse_flags(flags), 0666u, std::move(cb));
}

/// cb(error_code). A descriptor that is not open gives bad_file_descriptor.
template <class Loop, class Cb>
auto close(Loop& loop, file_descriptor fd, Cb cb) {
  return detail::fs_ops::queue<detail::no_value>(
      loop, [fd](detail::no_value&) { return detail::fs_ops::do_close(fd); }, std::move(cb));
}

/// Read up to buffer.size() bytes at the current position.
/// cb(error_code, std::size_t bytes_read); 0 bytes at the end of the file.
/// `buffer` must stay valid until the callback runs.
template <class Loop, class Cb>
auto read(Loop& loop, file_descriptor fd, std::span<std::byte> buffer, Cb cb) {
  return detail::fs_ops::queue<std::size_t>(
      loop, [fd, buffer](std::size_t& n) { return detail::fs_ops::do_read(fd, buffer, -1, n); },
      std::move(cb));
}

/// Read at `position` (pread); the file position does not move.
template <class Loop, class Cb>
auto read(Loop& loop, file_descriptor fd, std::span<std::byte> buffer, std::uint64_t position,
          Cb cb) {
  return detail::fs_ops::queue<std::size_t>(
      loop,
      [fd, buffer, position](std::size_t& n) {
        if (detail::fs_ops::bad_offset(position)) return detail::fs_ops::invalid_argument();
        return detail::fs_ops::do_read(fd, buffer, static_cast<std::int64_t>(position), n);
      },
      std::move(cb));
}

/// Write `data` at the current position (or the end, for O_APPEND).
/// cb(error_code, std::size_t bytes_written). `data` must stay valid until
/// the callback runs.
template <class Loop, class Cb>
auto write(Loop& loop, file_descriptor fd, std::span<const std::byte> data, Cb cb) {
  return detail::fs_ops::queue<std::size_t>(
      loop, [fd, data](std::size_t& n) { return detail::fs_ops::do_write(fd, data, -1, n); },
      std::move(cb));
}

/// Write at `position` (pwrite); the file position does not move.
template <class Loop, class Cb>
auto write(Loop& loop, file_descriptor fd, std::span<const std::byte> data, std::uint64_t position,
           Cb cb) {
  return detail::fs_ops::queue<std::size_t>(
      loop,
      [fd, data, position](std::size_t& n) {
        if (detail::fs_ops::bad_offset(position)) return detail::fs_ops::invalid_argument();
        return detail::fs_ops::do_write(fd, data, static_cast<std::int64_t>(position), n);
      },
      std::move(cb));
}

}  // namespace phaseloop::fs

namespace phaseloop::detail::fs_ops {
template <class Loop, class Cb>
auto stat_path(Loop& loop, std::string path, bool follow_links, Cb cb) {
  return detail::fs_ops::queue<stats>(
      loop,
      [path = std::move(path), follow_links](stats& out) {
        if (path.empty()) return detail::fs_ops::errno_code(ENOENT);
        if (detail::fs_ops::bad_path(path)) return detail::fs_ops::invalid_argument();
        return detail::fs_ops::do_stat(AT_FDCWD, path.c_str(), follow_links, out);
      },
      std::move(cb));
}
}  // namespace phaseloop::detail::fs_ops

namespace phaseloop::fs {

/// cb(error_code, stats), following symbolic links.
template <class Loop, class Cb>
auto stat(Loop& loop, std::string path, Cb cb) {
  return detail::fs_ops::stat_path(loop, std::move(path), true, std::move(cb));
}

/// cb(error_code, stats) of the link itself.
template <class Loop, class Cb>
auto lstat(Loop& loop, std::string path, Cb cb) {
  return detail::fs_ops::stat_path(loop, std::move(path), false, std::move(cb));
}

/// cb(error_code, stats) of an open descriptor.
template <class Loop, class Cb>
auto fstat(Loop& loop, file_descriptor fd, Cb cb) {
  return detail::fs_ops::queue<stats>(
      loop, [fd](stats& out) { return detail::fs_ops::do_stat(fd, "", true, out); }, std::move(cb));
}

/// Truncate or extend to `length` bytes. cb(error_code).
template <class Loop, class Cb>
auto ftruncate(Loop& loop, file_descriptor fd, std::uint64_t length, Cb cb) {
  return detail::fs_ops::queue<detail::no_value>(
      loop,
      [fd, length](detail::no_value&) {
        if (detail::fs_ops::bad_offset(length)) return detail::fs_ops::invalid_argument();
        int r;
        do r = ::ftruncate(fd, static_cast<off_t>(length));
        while (r != 0 && errno == EINTR);
        return r == 0 ? std::error_code{} : detail::fs_ops::errno_code();
      },
      std::move(cb));
}

/// Truncate to 0 bytes (Node's default length).
template <class Loop, class Cb>
auto ftruncate(Loop& loop, file_descriptor fd, Cb cb) {
  return fs::ftruncate(loop, fd, std::uint64_t{0}, std::move(cb));
}

/// cb(error_code).
template <class Loop, class Cb>
auto fsync(Loop& loop, file_descriptor fd, Cb cb) {
  return detail::fs_ops::queue<detail::no_value>(
      loop,
      [fd](detail::no_value&) {
        return ::fsync(fd) == 0 ? std::error_code{} : detail::fs_ops::errno_code();
      },
      std::move(cb));
}

/// cb(error_code). fsync where the system has no fdatasync.
template <class Loop, class Cb>
auto fdatasync(Loop& loop, file_descriptor fd, Cb cb) {
  return detail::fs_ops::queue<detail::no_value>(
      loop,
      [fd](detail::no_value&) {
#if defined(__APPLE__)
        const int r = ::fsync(fd);
#else
        const int r = ::fdatasync(fd);
#endif
        return r == 0 ? std::error_code{} : detail::fs_ops::errno_code();
      },
      std::move(cb));
}

}  // namespace phaseloop::fs

namespace phaseloop::detail::fs_ops {
/// An operation on one path that reports only an error.
template <class Loop, class Cb, class Call>
auto path_call(Loop& loop, std::string path, Call call, Cb cb) {
  return detail::fs_ops::queue<no_value>(
      loop,
      [path = std::move(path), call](no_value&) {
        if (bad_path(path)) return invalid_argument();
        return call(path.c_str()) == 0 ? std::error_code{} : errno_code();
      },
      std::move(cb));
}

/// An operation on two paths that reports only an error.
template <class Loop, class Cb, class Call>
auto two_path_call(Loop& loop, std::string a, std::string b, Call call, Cb cb) {
  return detail::fs_ops::queue<no_value>(
      loop,
      [a = std::move(a), b = std::move(b), call](no_value&) {
        if (bad_path(a) || bad_path(b)) return invalid_argument();
        return call(a.c_str(), b.c_str()) == 0 ? std::error_code{} : errno_code();
      },
      std::move(cb));
}
}  // namespace phaseloop::detail::fs_ops

namespace phaseloop::fs {

/// cb(error_code).
template <class Loop, class Cb>
auto unlink(Loop& loop, std::string path, Cb cb) {
  return detail::fs_ops::path_call(loop, std::move(path), [](const char* p) { return ::unlink(p); },
                           std::move(cb));
}

/// cb(error_code).
template <class Loop, class Cb>
auto rename(Loop& loop, std::string from, std::string to, Cb cb) {
  return detail::fs_ops::two_path_call(
      loop, std::move(from), std::move(to),
      [](const char* a, const char* b) { return ::rename(a, b); }, std::move(cb));
}

/// cb(error_code). With options.recursive, missing parents are created and an
/// existing directory is not an error (an existing file is: EEXIST).
template <class Loop, class Cb>
auto mkdir(Loop& loop, std::string path, mkdir_options options, Cb cb) {
  return detail::fs_ops::queue<detail::no_value>(
      loop,
      [path = std::move(path), options](detail::no_value&) {
        if (detail::fs_ops::bad_path(path)) return detail::fs_ops::invalid_argument();
        const auto mode = static_cast<mode_t>(options.mode);
        if (options.recursive) return detail::fs_ops::mkdir_recursive(path, mode);
        return ::mkdir(path.c_str(), mode) == 0 ? std::error_code{} : detail::fs_ops::errno_code();
      },
      std::move(cb));
}

template <class Loop, class Cb>
auto mkdir(Loop& loop, std::string path, Cb cb) {
  return fs::mkdir(loop, std::move(path), mkdir_options{}, std::move(cb));
}

/// Remove an empty directory. cb(error_code).
template <class Loop, class Cb>
auto rmdir(Loop& loop, std::string path, Cb cb) {
  return detail::fs_ops::path_call(loop, std::move(path), [](const char* p) { return ::rmdir(p); },
                           std::move(cb));
}

/// Remove a file, a link or (with options.recursive) a directory tree, as
/// Node's fs.rm: a directory without `recursive` gives EISDIR (Node's
/// ERR_FS_EISDIR), `force` makes a missing path a success, links are removed
/// and never followed. cb(error_code).
template <class Loop, class Cb>
auto rm(Loop& loop, std::string path, rm_options options, Cb cb) {
  return detail::fs_ops::queue<detail::no_value>(
      loop,
      [path = std::move(path), options](detail::no_value&) { return detail::fs_ops::do_rm(path, options); },
      std::move(cb));
}

template <class Loop, class Cb>
auto rm(Loop& loop, std::string path, Cb cb) {
  return fs::rm(loop, std::move(path), rm_options{}, std::move(cb));
}

/// Create a directory named `prefix` plus six random characters.
/// cb(error_code, std::string path).
template <class Loop, class Cb>
auto mkdtemp(Loop& loop, std::string prefix, Cb cb) {
  return detail::fs_ops::queue<std::string>(
      loop, [prefix = std::move(prefix)](std::string& out) { return detail::fs_ops::do_mkdtemp(prefix, out); },
      std::move(cb));
}

/// The entries of a directory with their types, in the system's order,
/// without "." and "..". cb(error_code, std::vector<fs::dirent>).
template <class Loop, class Cb>
auto readdir(Loop& loop, std::string path, Cb cb) {
  return detail::fs_ops::queue<std::vector<dirent>>(
      loop,
      [path = std::move(path)](std::vector<dirent>& out) { return detail::fs_ops::do_readdir(path, out); },
      std::move(cb));
}

/// The target of a symbolic link, however long. cb(error_code, std::string).
template <class Loop, class Cb>
auto readlink(Loop& loop, std::string path, Cb cb) {
  return detail::fs_ops::queue<std::string>(
      loop, [path = std::move(path)](std::string& out) { return detail::fs_ops::do_readlink(path, out); },
      std::move(cb));
}

/// The canonical absolute path. cb(error_code, std::string).
template <class Loop, class Cb>
auto realpath(Loop& loop, std::string path, Cb cb) {
  return detail::fs_ops::queue<std::string>(
      loop, [path = std::move(path)](std::string& out) { return detail::fs_ops::do_realpath(path, out); },
      std::move(cb));
}

/// Create `path` as a symbolic link to `target`. cb(error_code).
template <class Loop, class Cb>
auto symlink(Loop& loop, std::string target, std::string path, Cb cb) {
  return detail::fs_ops::two_path_call(
      loop, std::move(target), std::move(path),
      [](const char* a, const char* b) { return ::symlink(a, b); }, std::move(cb));
}

/// Create `new_path` as a hard link to `existing`. cb(error_code).
template <class Loop, class Cb>
auto link(Loop& loop, std::string existing, std::string new_path, Cb cb) {
  return detail::fs_ops::two_path_call(
      loop, std::move(existing), std::move(new_path),
      [](const char* a, const char* b) { return ::link(a, b); }, std::move(cb));
}

/// cb(error_code).
template <class Loop, class Cb>
auto chmod(Loop& loop, std::string path, unsigned mode, Cb cb) {
  return detail::fs_ops::path_call(
      loop, std::move(path),
      [mode](const char* p) { return ::chmod(p, static_cast<mode_t>(mode)); }, std::move(cb));
}

/// Set the access and modification times (nanosecond precision where the
/// file system keeps it). cb(error_code).
template <class Loop, class Cb>
auto utimes(Loop& loop, std::string path, std::chrono::system_clock::time_point atime,
            std::chrono::system_clock::time_point mtime, Cb cb) {
  return detail::fs_ops::path_call(
      loop, std::move(path),
      [atime, mtime](const char* p) {
        const struct timespec times[2] = {detail::fs_ops::to_timespec(atime), detail::fs_ops::to_timespec(mtime)};
        return ::utimensat(AT_FDCWD, p, times, 0);
      },
      std::move(cb));
}

/// Check the permissions `mode` (constants::f_ok, r_ok | w_ok, ...). cb(error_code).
template <class Loop, class Cb>
auto access(Loop& loop, std::string path, int mode, Cb cb) {
  return detail::fs_ops::path_call(
      loop, std::move(path), [mode](const char* p) { return ::access(p, mode); }, std::move(cb));
}

template <class Loop, class Cb>
auto access(Loop& loop, std::string path, Cb cb) {
  return fs::access(loop, std::move(path), constants::f_ok, std::move(cb));
}

/// Copy a file's contents and permission bits; `flags` is 0 or
/// constants::copyfile_excl. Copying a file onto itself does nothing.
/// cb(error_code).
template <class Loop, class Cb>
auto copyfile(Loop& loop, std::string from, std::string to, int flags, Cb cb) {
  return detail::fs_ops::queue<detail::no_value>(
      loop,
      [from = std::move(from), to = std::move(to), flags](detail::no_value&) {
        return detail::fs_ops::do_copyfile(from, to, flags);
      },
      std::move(cb));
}

template <class Loop, class Cb>
auto copyfile(Loop& loop, std::string from, std::string to, Cb cb) {
  return fs::copyfile(loop, std::move(from), std::move(to), 0, std::move(cb));
}

/// The whole file as Result: std::string (the default) or
/// std::vector<std::byte>. cb(error_code, Result). A file larger than
/// fs::max_read_file_size (2 GiB - 1, Node's limit), or a source that goes on
/// past it (/dev/zero, a FIFO), gives phaseloop::errc::file_too_large (Node's
/// ERR_FS_FILE_TOO_LARGE; it compares equal to std::errc::file_too_large
/// too) and an empty Result: on every error the Result is empty.
template <class Result = std::string, class Loop, class Cb>
auto read_file(Loop& loop, std::string path, Cb cb) {
  static_assert(std::is_same_v<Result, std::string> || std::is_same_v<Result, std::vector<std::byte>>,
                "fs::read_file reads into std::string or std::vector<std::byte>");
  return detail::fs_ops::queue<Result>(
      loop,
      [path = std::move(path)](Result& out) { return detail::fs_ops::do_read_file(path, out); },
      std::move(cb));
}

}  // namespace phaseloop::fs

namespace phaseloop::detail::fs_ops {
template <class Loop, class Data, class Cb>
auto write_file_impl(Loop& loop, std::string path, Data data, int flags, unsigned mode, Cb cb) {
  return detail::fs_ops::queue<no_value>(
      loop,
      [path = std::move(path), data = std::move(data), flags, mode](no_value&) {
        const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data.data()),
                                               data.size());
        return do_write_file(path, bytes, flags, mode);
      },
      std::move(cb));
}
}  // namespace phaseloop::detail::fs_ops

namespace phaseloop::fs {

/// Replace the file's contents with `data`, creating it (mode 0666). cb(error_code).
template <class Loop, class Cb>
auto write_file(Loop& loop, std::string path, std::string data, Cb cb) {
  return detail::fs_ops::write_file_impl(loop, std::move(path), std::move(data),
                                 O_WRONLY | O_CREAT | O_TRUNC, 0666u, std::move(cb));
}

template <class Loop, class Cb>
auto write_file(Loop& loop, std::string path, std::vector<std::byte> data, Cb cb) {
  return detail::fs_ops::write_file_impl(loop, std::move(path), std::move(data),
                                 O_WRONLY | O_CREAT | O_TRUNC, 0666u, std::move(cb));
}

/// Append `data`, creating the file (mode 0666). cb(error_code).
template <class Loop, class Cb>
auto append_file(Loop& loop, std::string path, std::string data, Cb cb) {
  return detail::fs_ops::write_file_impl(loop, std::move(path), std::move(data),
                                 O_WRONLY | O_CREAT | O_APPEND, 0666u, std::move(cb));
}

template <class Loop, class Cb>
auto append_file(Loop& loop, std::string path, std::vector<std::byte> data, Cb cb) {
  return detail::fs_ops::write_file_impl(loop, std::move(path), std::move(data),
                                 O_WRONLY | O_CREAT | O_APPEND, 0666u, std::move(cb));
}

/// Node's fs.promises: each function as in phaseloop::fs without the
/// callback, returning a promise that fulfils with the result or rejects with
/// std::system_error. Buffers passed to read() and write() must stay valid
/// until the promise settles.
namespace promises {

// Node's fs.promises: each is its callback form with the use_promise token
// (phaseloop/use_promise.hpp), which also takes a cancellation signal:
// fs::read_file(loop, path, use_promise(signal)).

template <class Loop>
promise<file_descriptor> open(Loop& loop, std::string path, int flags, unsigned mode = 0666) {
  return fs::open(loop, std::move(path), flags, mode, phaseloop::use_promise);
}
template <class Loop>
promise<file_descriptor> open(Loop& loop, std::string path, std::string_view flags = "r",
                              unsigned mode = 0666) {
  return fs::open(loop, std::move(path), flags, mode, phaseloop::use_promise);
}
template <class Loop>
promise<void> close(Loop& loop, file_descriptor fd) {
  return fs::close(loop, fd, phaseloop::use_promise);
}
template <class Loop>
promise<std::size_t> read(Loop& loop, file_descriptor fd, std::span<std::byte> buffer) {
  return fs::read(loop, fd, buffer, phaseloop::use_promise);
}
template <class Loop>
promise<std::size_t> read(Loop& loop, file_descriptor fd, std::span<std::byte> buffer,
                          std::uint64_t position) {
  return fs::read(loop, fd, buffer, position, phaseloop::use_promise);
}
template <class Loop>
promise<std::size_t> write(Loop& loop, file_descriptor fd, std::span<const std::byte> data) {
  return fs::write(loop, fd, data, phaseloop::use_promise);
}
template <class Loop>
promise<std::size_t> write(Loop& loop, file_descriptor fd, std::span<const std::byte> data,
                           std::uint64_t position) {
  return fs::write(loop, fd, data, position, phaseloop::use_promise);
}
template <class Loop>
promise<stats> stat(Loop& loop, std::string path) {
  return fs::stat(loop, std::move(path), phaseloop::use_promise);
}
template <class Loop>
promise<stats> lstat(Loop& loop, std::string path) {
  return fs::lstat(loop, std::move(path), phaseloop::use_promise);
}
template <class Loop>
promise<stats> fstat(Loop& loop, file_descriptor fd) {
  return fs::fstat(loop, fd, phaseloop::use_promise);
}
template <class Loop>
promise<void> ftruncate(Loop& loop, file_descriptor fd, std::uint64_t length = 0) {
  return fs::ftruncate(loop, fd, length, phaseloop::use_promise);
}
template <class Loop>
promise<void> fsync(Loop& loop, file_descriptor fd) {
  return fs::fsync(loop, fd, phaseloop::use_promise);
}
template <class Loop>
promise<void> fdatasync(Loop& loop, file_descriptor fd) {
  return fs::fdatasync(loop, fd, phaseloop::use_promise);
}
template <class Loop>
promise<void> unlink(Loop& loop, std::string path) {
  return fs::unlink(loop, std::move(path), phaseloop::use_promise);
}
template <class Loop>
promise<void> rename(Loop& loop, std::string from, std::string to) {
  return fs::rename(loop, std::move(from), std::move(to), phaseloop::use_promise);
}
template <class Loop>
promise<void> mkdir(Loop& loop, std::string path, mkdir_options options = {}) {
  return fs::mkdir(loop, std::move(path), options, phaseloop::use_promise);
}
template <class Loop>
promise<void> rmdir(Loop& loop, std::string path) {
  return fs::rmdir(loop, std::move(path), phaseloop::use_promise);
}
template <class Loop>
promise<void> rm(Loop& loop, std::string path, rm_options options = {}) {
  return fs::rm(loop, std::move(path), options, phaseloop::use_promise);
}
template <class Loop>
promise<std::string> mkdtemp(Loop& loop, std::string prefix) {
  return fs::mkdtemp(loop, std::move(prefix), phaseloop::use_promise);
}
template <class Loop>
promise<std::vector<dirent>> readdir(Loop& loop, std::string path) {
  return fs::readdir(loop, std::move(path), phaseloop::use_promise);
}
template <class Loop>
promise<std::string> readlink(Loop& loop, std::string path) {
  return fs::readlink(loop, std::move(path), phaseloop::use_promise);
}
template <class Loop>
promise<std::string> realpath(Loop& loop, std::string path) {
  return fs::realpath(loop, std::move(path), phaseloop::use_promise);
}
template <class Loop>
promise<void> symlink(Loop& loop, std::string target, std::string path) {
  return fs::symlink(loop, std::move(target), std::move(path), phaseloop::use_promise);
}
template <class Loop>
promise<void> link(Loop& loop, std::string existing, std::string new_path) {
  return fs::link(loop, std::move(existing), std::move(new_path), phaseloop::use_promise);
}
template <class Loop>
promise<void> chmod(Loop& loop, std::string path, unsigned mode) {
  return fs::chmod(loop, std::move(path), mode, phaseloop::use_promise);
}
template <class Loop>
promise<void> utimes(Loop& loop, std::string path, std::chrono::system_clock::time_point atime,
                     std::chrono::system_clock::time_point mtime) {
  return fs::utimes(loop, std::move(path), atime, mtime, phaseloop::use_promise);
}
template <class Loop>
promise<void> access(Loop& loop, std::string path, int mode = constants::f_ok) {
  return fs::access(loop, std::move(path), mode, phaseloop::use_promise);
}
template <class Loop>
promise<void> copyfile(Loop& loop, std::string from, std::string to, int flags = 0) {
  return fs::copyfile(loop, std::move(from), std::move(to), flags, phaseloop::use_promise);
}
template <class Result = std::string, class Loop>
promise<Result> read_file(Loop& loop, std::string path) {
  return fs::read_file<Result>(loop, std::move(path), phaseloop::use_promise);
}
template <class Loop>
promise<void> write_file(Loop& loop, std::string path, std::string data) {
  return fs::write_file(loop, std::move(path), std::move(data), phaseloop::use_promise);
}
template <class Loop>
promise<void> write_file(Loop& loop, std::string path, std::vector<std::byte> data) {
  return fs::write_file(loop, std::move(path), std::move(data), phaseloop::use_promise);
}
template <class Loop>
promise<void> append_file(Loop& loop, std::string path, std::string data) {
  return fs::append_file(loop, std::move(path), std::move(data), phaseloop::use_promise);
}
template <class Loop>
promise<void> append_file(Loop& loop, std::string path, std::vector<std::byte> data) {
  return fs::append_file(loop, std::move(path), std::move(data), phaseloop::use_promise);
}

}  // namespace promises

}  // namespace phaseloop::fs

#endif  // !defined(_WIN32)
