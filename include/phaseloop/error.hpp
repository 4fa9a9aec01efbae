#pragma once
// Error codes: Node's names for them, and the library's own codes.
//
//   phaseloop::error_name(ec)    "ENOENT", "ECONNREFUSED", "ENOTFOUND", ...: what
//                                Node puts in err.code (uv_err_name's names)
//   phaseloop::errc              codes the system has no errno for, in the
//                                "phaseloop" category (ec == phaseloop::errc::loop_gone)
//
// error_name() knows:
// - std::generic_category() codes (errno values, std::errc), and
//   std::system_category() codes, which are errno values on POSIX: every
//   errno that libuv names (E2BIG ... EXDEV, the names of uv-errno.h that the
//   platform defines), so "ECANCELED" for std::errc::operation_canceled;
// - on Windows, system_category() codes are Win32 and Winsock errors: the
//   Winsock ones (WSAECONNREFUSED ...) and the Win32 errors libuv translates
//   get the name libuv gives them (ERROR_FILE_NOT_FOUND is "ENOENT");
// - phaseloop::dns::errc (dns.hpp), as Node's dns.lookup reports them:
//   "ENOTFOUND" for a name that does not resolve (EAI_NONAME) or has no
//   address of the family asked for (EAI_NODATA, EAI_ADDRFAMILY), "EAI_AGAIN",
//   "EAI_FAIL", "EAI_BADFLAGS", "EAI_FAMILY", "EAI_OVERFLOW", and Node's dns
//   codes "EBADNAME" (a hostname it would not look up) and "EBADFAMILY";
// - phaseloop::errc: "ERR_FS_FILE_TOO_LARGE", "ERR_LOOP_GONE",
//   "ERR_STREAM_WRITE_AFTER_END";
// - any other category whose default_error_condition() is a generic one;
// and gives "UNKNOWN" for everything else (libuv's UV_UNKNOWN). A cleared
// error_code has no name: "" (Node's err is null then).

#include <phaseloop/version.hpp>

#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <system_error>
#include <type_traits>

namespace phaseloop {

/// The library's own error codes: conditions the system has no errno for.
enum class errc {
  file_too_large = 1,  ///< ERR_FS_FILE_TOO_LARGE: a file too large to read into one buffer
  loop_gone,           ///< ERR_LOOP_GONE: the loop a poster or handle refers to was destroyed
  write_after_end,     ///< ERR_STREAM_WRITE_AFTER_END: a write after the stream was ended
  aborted,             ///< ABORT_ERR: the operation was aborted through its abort_signal
};

namespace detail {

/// The one T, made on first use and never destroyed: no exit-time
/// destructor, and an error category outlives every error code that refers
/// to it, even in other static objects' destructors.
template <class T>
const T& immortal() noexcept {
  alignas(T) static unsigned char storage[sizeof(T)];
  static const T* const instance = ::new (static_cast<void*>(storage)) T();
  return *instance;
}

// clang's -Wweak-vtables cannot be met by a header-only library: no source
// file can hold an out-of-line virtual function, so every translation unit
// emits the vtable (the linker keeps one). Silenced for this class alone.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wweak-vtables"
#endif
class phaseloop_error_category final : public std::error_category {
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
 public:
  [[nodiscard]] const char* name() const noexcept override { return "phaseloop"; }
  [[nodiscard]] std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::file_too_large: return "file too large to read into one buffer";
      case errc::loop_gone: return "the loop was destroyed";
      case errc::write_after_end: return "write after end";
      case errc::aborted: return "the operation was aborted";
    }
    return "unknown phaseloop error";
  }
  /// file_too_large also compares equal to std::errc::file_too_large (EFBIG),
  /// aborted to std::errc::operation_canceled (ECANCELED).
  [[nodiscard]] std::error_condition default_error_condition(int value) const noexcept override {
    if (static_cast<errc>(value) == errc::file_too_large)
      return std::make_error_condition(std::errc::file_too_large);
    if (static_cast<errc>(value) == errc::aborted) return std::make_error_condition(std::errc::operation_canceled);
    return {value, *this};
  }
};

}  // namespace detail

/// The "phaseloop" error category, of phaseloop::errc.
inline const std::error_category& error_category() noexcept {
  return detail::immortal<detail::phaseloop_error_category>();
}

/// phaseloop::errc as a std::error_code (found by argument-dependent lookup).
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace phaseloop

// A std trait specialization, not phaseloop API: out of the reference.
/// \cond
template <>
struct std::is_error_code_enum<phaseloop::errc> : std::true_type {};
/// \endcond

namespace phaseloop {

namespace detail {

struct error_name_entry {
  int value;
  const char* name;
};

// Every errno name libuv knows (uv-errno.h), where the platform defines it.
// A table, not a switch: some platforms give two names one value.
#define PHASELOOP_DETAIL_ERRNO(name) {name, #name},
inline constexpr error_name_entry errno_names[] = {
#ifdef E2BIG
    PHASELOOP_DETAIL_ERRNO(E2BIG)
#endif
#ifdef EACCES
    PHASELOOP_DETAIL_ERRNO(EACCES)
#endif
#ifdef EADDRINUSE
    PHASELOOP_DETAIL_ERRNO(EADDRINUSE)
#endif
#ifdef EADDRNOTAVAIL
    PHASELOOP_DETAIL_ERRNO(EADDRNOTAVAIL)
#endif
#ifdef EAFNOSUPPORT
    PHASELOOP_DETAIL_ERRNO(EAFNOSUPPORT)
#endif
#ifdef EAGAIN
    PHASELOOP_DETAIL_ERRNO(EAGAIN)
#endif
#ifdef EALREADY
    PHASELOOP_DETAIL_ERRNO(EALREADY)
#endif
#ifdef EBADF
    PHASELOOP_DETAIL_ERRNO(EBADF)
#endif
#ifdef EBUSY
    PHASELOOP_DETAIL_ERRNO(EBUSY)
#endif
#ifdef ECANCELED
    PHASELOOP_DETAIL_ERRNO(ECANCELED)
#endif
#ifdef ECHARSET
    PHASELOOP_DETAIL_ERRNO(ECHARSET)
#endif
#ifdef ECONNABORTED
    PHASELOOP_DETAIL_ERRNO(ECONNABORTED)
#endif
#ifdef ECONNREFUSED
    PHASELOOP_DETAIL_ERRNO(ECONNREFUSED)
#endif
#ifdef ECONNRESET
    PHASELOOP_DETAIL_ERRNO(ECONNRESET)
#endif
#ifdef EDESTADDRREQ
    PHASELOOP_DETAIL_ERRNO(EDESTADDRREQ)
#endif
#ifdef EEXIST
    PHASELOOP_DETAIL_ERRNO(EEXIST)
#endif
#ifdef EFAULT
    PHASELOOP_DETAIL_ERRNO(EFAULT)
#endif
#ifdef EFBIG
    PHASELOOP_DETAIL_ERRNO(EFBIG)
#endif
#ifdef EFTYPE
    PHASELOOP_DETAIL_ERRNO(EFTYPE)
#endif
#ifdef EHOSTDOWN
    PHASELOOP_DETAIL_ERRNO(EHOSTDOWN)
#endif
#ifdef EHOSTUNREACH
    PHASELOOP_DETAIL_ERRNO(EHOSTUNREACH)
#endif
#ifdef EILSEQ
    PHASELOOP_DETAIL_ERRNO(EILSEQ)
#endif
#ifdef EINTR
    PHASELOOP_DETAIL_ERRNO(EINTR)
#endif
#ifdef EINVAL
    PHASELOOP_DETAIL_ERRNO(EINVAL)
#endif
#ifdef EIO
    PHASELOOP_DETAIL_ERRNO(EIO)
#endif
#ifdef EISCONN
    PHASELOOP_DETAIL_ERRNO(EISCONN)
#endif
#ifdef EISDIR
    PHASELOOP_DETAIL_ERRNO(EISDIR)
#endif
#ifdef ELOOP
    PHASELOOP_DETAIL_ERRNO(ELOOP)
#endif
#ifdef EMFILE
    PHASELOOP_DETAIL_ERRNO(EMFILE)
#endif
#ifdef EMLINK
    PHASELOOP_DETAIL_ERRNO(EMLINK)
#endif
#ifdef EMSGSIZE
    PHASELOOP_DETAIL_ERRNO(EMSGSIZE)
#endif
#ifdef ENAMETOOLONG
    PHASELOOP_DETAIL_ERRNO(ENAMETOOLONG)
#endif
#ifdef ENETDOWN
    PHASELOOP_DETAIL_ERRNO(ENETDOWN)
#endif
#ifdef ENETUNREACH
    PHASELOOP_DETAIL_ERRNO(ENETUNREACH)
#endif
#ifdef ENFILE
    PHASELOOP_DETAIL_ERRNO(ENFILE)
#endif
#ifdef ENOBUFS
    PHASELOOP_DETAIL_ERRNO(ENOBUFS)
#endif
#ifdef ENODATA
    PHASELOOP_DETAIL_ERRNO(ENODATA)
#endif
#ifdef ENODEV
    PHASELOOP_DETAIL_ERRNO(ENODEV)
#endif
#ifdef ENOENT
    PHASELOOP_DETAIL_ERRNO(ENOENT)
#endif
#ifdef ENOEXEC
    PHASELOOP_DETAIL_ERRNO(ENOEXEC)
#endif
#ifdef ENOMEM
    PHASELOOP_DETAIL_ERRNO(ENOMEM)
#endif
#ifdef ENONET
    PHASELOOP_DETAIL_ERRNO(ENONET)
#endif
#ifdef ENOPROTOOPT
    PHASELOOP_DETAIL_ERRNO(ENOPROTOOPT)
#endif
#ifdef ENOSPC
    PHASELOOP_DETAIL_ERRNO(ENOSPC)
#endif
#ifdef ENOSYS
    PHASELOOP_DETAIL_ERRNO(ENOSYS)
#endif
#ifdef ENOTCONN
    PHASELOOP_DETAIL_ERRNO(ENOTCONN)
#endif
#ifdef ENOTDIR
    PHASELOOP_DETAIL_ERRNO(ENOTDIR)
#endif
#ifdef ENOTEMPTY
    PHASELOOP_DETAIL_ERRNO(ENOTEMPTY)
#endif
#ifdef ENOTSOCK
    PHASELOOP_DETAIL_ERRNO(ENOTSOCK)
#endif
#ifdef ENOTSUP
    PHASELOOP_DETAIL_ERRNO(ENOTSUP)
#endif
#ifdef ENOTTY
    PHASELOOP_DETAIL_ERRNO(ENOTTY)
#endif
#ifdef ENXIO
    PHASELOOP_DETAIL_ERRNO(ENXIO)
#endif
#ifdef EOVERFLOW
    PHASELOOP_DETAIL_ERRNO(EOVERFLOW)
#endif
#ifdef EPERM
    PHASELOOP_DETAIL_ERRNO(EPERM)
#endif
#ifdef EPIPE
    PHASELOOP_DETAIL_ERRNO(EPIPE)
#endif
#ifdef EPROTO
    PHASELOOP_DETAIL_ERRNO(EPROTO)
#endif
#ifdef EPROTONOSUPPORT
    PHASELOOP_DETAIL_ERRNO(EPROTONOSUPPORT)
#endif
#ifdef EPROTOTYPE
    PHASELOOP_DETAIL_ERRNO(EPROTOTYPE)
#endif
#ifdef ERANGE
    PHASELOOP_DETAIL_ERRNO(ERANGE)
#endif
#ifdef EREMOTEIO
    PHASELOOP_DETAIL_ERRNO(EREMOTEIO)
#endif
#ifdef EROFS
    PHASELOOP_DETAIL_ERRNO(EROFS)
#endif
#ifdef ESHUTDOWN
    PHASELOOP_DETAIL_ERRNO(ESHUTDOWN)
#endif
#ifdef ESOCKTNOSUPPORT
    PHASELOOP_DETAIL_ERRNO(ESOCKTNOSUPPORT)
#endif
#ifdef ESPIPE
    PHASELOOP_DETAIL_ERRNO(ESPIPE)
#endif
#ifdef ESRCH
    PHASELOOP_DETAIL_ERRNO(ESRCH)
#endif
#ifdef ETIMEDOUT
    PHASELOOP_DETAIL_ERRNO(ETIMEDOUT)
#endif
#ifdef ETXTBSY
    PHASELOOP_DETAIL_ERRNO(ETXTBSY)
#endif
#ifdef EUNATCH
    PHASELOOP_DETAIL_ERRNO(EUNATCH)
#endif
#ifdef EXDEV
    PHASELOOP_DETAIL_ERRNO(EXDEV)
#endif
    {0, nullptr},
};
#undef PHASELOOP_DETAIL_ERRNO

#if defined(_WIN32)
// Win32 and Winsock errors (system_category() on Windows) as libuv
// translates them (uv_translate_sys_error); the numbers are the Windows
// SDK's, so <windows.h> and <winsock2.h> stay out of this header.
inline constexpr error_name_entry windows_error_names[] = {
    {2, "ENOENT"},          // ERROR_FILE_NOT_FOUND
    {3, "ENOENT"},          // ERROR_PATH_NOT_FOUND
    {4, "EMFILE"},          // ERROR_TOO_MANY_OPEN_FILES
    {5, "EPERM"},           // ERROR_ACCESS_DENIED
    {6, "EBADF"},           // ERROR_INVALID_HANDLE
    {8, "ENOMEM"},          // ERROR_NOT_ENOUGH_MEMORY
    {14, "ENOMEM"},         // ERROR_OUTOFMEMORY
    {15, "ENOENT"},         // ERROR_INVALID_DRIVE
    {17, "EXDEV"},          // ERROR_NOT_SAME_DEVICE
    {19, "EROFS"},          // ERROR_WRITE_PROTECT
    {32, "EBUSY"},          // ERROR_SHARING_VIOLATION
    {33, "EBUSY"},          // ERROR_LOCK_VIOLATION
    {39, "ENOSPC"},         // ERROR_HANDLE_DISK_FULL
    {50, "ENOTSUP"},        // ERROR_NOT_SUPPORTED
    {64, "ECONNRESET"},     // ERROR_NETNAME_DELETED
    {80, "EEXIST"},         // ERROR_FILE_EXISTS
    {87, "EINVAL"},         // ERROR_INVALID_PARAMETER
    {109, "EOF"},           // ERROR_BROKEN_PIPE
    {111, "EFAULT"},        // ERROR_BUFFER_OVERFLOW
    {112, "ENOSPC"},        // ERROR_DISK_FULL
    {121, "ETIMEDOUT"},     // ERROR_SEM_TIMEOUT
    {122, "EINVAL"},        // ERROR_INSUFFICIENT_BUFFER
    {123, "ENOENT"},        // ERROR_INVALID_NAME
    {126, "ENOENT"},        // ERROR_MOD_NOT_FOUND
    {145, "ENOTEMPTY"},     // ERROR_DIR_NOT_EMPTY
    {161, "ENOENT"},        // ERROR_BAD_PATHNAME
    {183, "EEXIST"},        // ERROR_ALREADY_EXISTS
    {206, "ENAMETOOLONG"},  // ERROR_FILENAME_EXCED_RANGE
    {230, "EPIPE"},         // ERROR_BAD_PIPE
    {231, "EBUSY"},         // ERROR_PIPE_BUSY
    {232, "EPIPE"},         // ERROR_NO_DATA
    {233, "EPIPE"},         // ERROR_PIPE_NOT_CONNECTED
    {995, "ECANCELED"},     // ERROR_OPERATION_ABORTED
    {1113, "ECHARSET"},     // ERROR_NO_UNICODE_TRANSLATION
    {1225, "ECONNREFUSED"}, // ERROR_CONNECTION_REFUSED
    {1231, "ENETUNREACH"},  // ERROR_NETWORK_UNREACHABLE
    {1232, "EHOSTUNREACH"}, // ERROR_HOST_UNREACHABLE
    {1236, "ECONNABORTED"}, // ERROR_CONNECTION_ABORTED
    {1314, "EPERM"},        // ERROR_PRIVILEGE_NOT_HELD
    {10004, "ECANCELED"},   // WSAEINTR
    {10009, "EBADF"},       // WSAEBADF
    {10013, "EACCES"},      // WSAEACCES
    {10014, "EFAULT"},      // WSAEFAULT
    {10022, "EINVAL"},      // WSAEINVAL
    {10024, "EMFILE"},      // WSAEMFILE
    {10035, "EAGAIN"},      // WSAEWOULDBLOCK
    {10037, "EALREADY"},    // WSAEALREADY
    {10038, "ENOTSOCK"},    // WSAENOTSOCK
    {10039, "EDESTADDRREQ"},     // WSAEDESTADDRREQ
    {10040, "EMSGSIZE"},         // WSAEMSGSIZE
    {10041, "EPROTOTYPE"},       // WSAEPROTOTYPE
    {10042, "ENOPROTOOPT"},      // WSAENOPROTOOPT
    {10043, "EPROTONOSUPPORT"},  // WSAEPROTONOSUPPORT
    {10044, "ESOCKTNOSUPPORT"},  // WSAESOCKTNOSUPPORT
    {10045, "ENOTSUP"},          // WSAEOPNOTSUPP
    {10046, "EINVAL"},           // WSAEPFNOSUPPORT
    {10047, "EAFNOSUPPORT"},     // WSAEAFNOSUPPORT
    {10048, "EADDRINUSE"},       // WSAEADDRINUSE
    {10049, "EADDRNOTAVAIL"},    // WSAEADDRNOTAVAIL
    {10050, "ENETDOWN"},         // WSAENETDOWN
    {10051, "ENETUNREACH"},      // WSAENETUNREACH
    {10053, "ECONNABORTED"},     // WSAECONNABORTED
    {10054, "ECONNRESET"},       // WSAECONNRESET
    {10055, "ENOBUFS"},          // WSAENOBUFS
    {10056, "EISCONN"},          // WSAEISCONN
    {10057, "ENOTCONN"},         // WSAENOTCONN
    {10058, "EPIPE"},            // WSAESHUTDOWN
    {10060, "ETIMEDOUT"},        // WSAETIMEDOUT
    {10061, "ECONNREFUSED"},     // WSAECONNREFUSED
    {10063, "ENAMETOOLONG"},     // WSAENAMETOOLONG
    {10064, "EHOSTDOWN"},        // WSAEHOSTDOWN
    {10065, "EHOSTUNREACH"},     // WSAEHOSTUNREACH
    {11001, "ENOENT"},           // WSAHOST_NOT_FOUND
    {11004, "ENOENT"},           // WSANO_DATA
    {0, nullptr},
};
#endif

inline const char* find_error_name(const error_name_entry* table, int value) noexcept {
  for (; table->name != nullptr; ++table)
    if (table->value == value) return table->name;
  return nullptr;
}

/// Names of phaseloop::dns::errc (dns.hpp), by value, as Node's dns.lookup
/// reports them (its dnsException turns EAI_NONAME and EAI_NODATA into ENOTFOUND).
inline const char* dns_error_name(int value) noexcept {
  switch (value) {
    case 1: return "EBADNAME";      // bad_hostname
    case 2: return "EINVAL";        // bad_address: lookup_service of a non-numeric address
    case 3: return "EBADFAMILY";    // bad_family
    case 4: return "ENOTFOUND";     // not_found (EAI_NONAME)
    case 5: return "ENOTFOUND";     // no_data (EAI_NODATA, EAI_ADDRFAMILY)
    case 6: return "EAI_AGAIN";     // try_again
    case 7: return "EAI_FAIL";      // failure
    case 8: return "EAI_BADFLAGS";  // bad_flags
    case 9: return "EAI_FAMILY";    // unsupported (EAI_FAMILY, EAI_SOCKTYPE, EAI_SERVICE)
    case 10: return "EAI_OVERFLOW"; // overflow
    default: return nullptr;
  }
}

}  // namespace detail

/// Node's name for `ec` (what err.code holds, uv_err_name's names):
/// "ENOENT", "ECONNREFUSED", "ENOTFOUND", "ERR_LOOP_GONE", ...; "UNKNOWN"
/// for a code without one, "" for a cleared error_code.
[[nodiscard]] inline const char* error_name(const std::error_code& ec) noexcept {
  if (!ec) return "";
  const std::error_category& category = ec.category();
  const int value = ec.value();
  const char* name = nullptr;
  if (category == std::generic_category()) {
    name = detail::find_error_name(detail::errno_names, value);
  } else if (category == std::system_category()) {
#if defined(_WIN32)
    name = detail::find_error_name(detail::windows_error_names, value);
#else
    name = detail::find_error_name(detail::errno_names, value);
#endif
  } else if (category == error_category()) {
    switch (static_cast<errc>(value)) {
      case errc::file_too_large: name = "ERR_FS_FILE_TOO_LARGE"; break;
      case errc::loop_gone: name = "ERR_LOOP_GONE"; break;
      case errc::write_after_end: name = "ERR_STREAM_WRITE_AFTER_END"; break;
      case errc::aborted: name = "ABORT_ERR"; break;
    }
  } else if (std::strcmp(category.name(), "phaseloop.dns") == 0) {
    // Compared by name: dns.hpp (POSIX-only, and heavier) need not be included.
    name = detail::dns_error_name(value);
  }
  if (name == nullptr) {
    // Another category that maps its codes onto errno conditions.
    const std::error_condition condition = category.default_error_condition(value);
    if (condition.category() == std::generic_category())
      name = detail::find_error_name(detail::errno_names, condition.value());
  }
  return name != nullptr ? name : "UNKNOWN";
}

}  // namespace phaseloop
