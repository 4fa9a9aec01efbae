#pragma once
// What the fs suites share (POSIX, as they are): a scratch directory, and
// calls run to their one callback.

#include "support.hpp"

#if !defined(_WIN32)

#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include <stdlib.h>  // mkdtemp

namespace phaseloop::test {

/// A fresh directory under `parent`, removed with everything in it at the end
/// (given its owner's permissions back first: a test may have taken them).
struct temp_dir {
  std::string path;
  explicit temp_dir(const std::filesystem::path& parent = std::filesystem::temp_directory_path()) {
    std::string pattern = (parent / "phaseloop-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path, ec);
  }
  [[nodiscard]] std::string operator/(const std::string& name) const { return path + "/" + name; }
};

/// Start an operation with a callback, run the loop, return what the callback got.
template <class T, class Loop, class Start>
std::pair<std::error_code, T> call(Loop& loop, Start start) {
  std::optional<std::pair<std::error_code, T>> got;
  start([&](std::error_code ec, T value) {
    REQUIRE_FALSE(got.has_value());  // exactly once
    got.emplace(ec, std::move(value));
  });
  CHECK_FALSE(got.has_value());  // never synchronous
  loop.run();
  REQUIRE(got.has_value());
  return std::move(*got);
}

/// The same for operations that report only an error.
template <class Loop, class Start>
std::error_code call0(Loop& loop, Start start) {
  std::optional<std::error_code> got;
  start([&](std::error_code ec) {
    REQUIRE_FALSE(got.has_value());
    got = ec;
  });
  CHECK_FALSE(got.has_value());
  loop.run();
  REQUIRE(got.has_value());
  return *got;
}

}  // namespace phaseloop::test

#endif  // !_WIN32
