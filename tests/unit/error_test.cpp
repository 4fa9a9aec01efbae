// error_name(): Node's code names for system, dns and phaseloop errors; the
// phaseloop error category.
// phaseloop: portable (no I/O; the Windows build checks the Winsock names)

#include "support.hpp"  // phaseloop/error.hpp comes with the umbrella (through fs.hpp for now)

#include <cerrno>
#include <ios>
#include <string>
#include <system_error>

namespace {

using phaseloop::error_name;

std::string name_of(std::errc e) { return error_name(std::make_error_code(e)); }

}  // namespace

TEST_CASE("error_name: errno codes get libuv's names", "[error]") {
  CHECK(name_of(std::errc::no_such_file_or_directory) == "ENOENT");
  CHECK(name_of(std::errc::connection_refused) == "ECONNREFUSED");
  CHECK(name_of(std::errc::address_in_use) == "EADDRINUSE");
  CHECK(name_of(std::errc::broken_pipe) == "EPIPE");
  CHECK(name_of(std::errc::connection_reset) == "ECONNRESET");
  CHECK(name_of(std::errc::timed_out) == "ETIMEDOUT");
  CHECK(name_of(std::errc::resource_unavailable_try_again) == "EAGAIN");
  CHECK(name_of(std::errc::too_many_files_open) == "EMFILE");
  CHECK(name_of(std::errc::is_a_directory) == "EISDIR");
  CHECK(name_of(std::errc::not_a_directory) == "ENOTDIR");
  CHECK(name_of(std::errc::directory_not_empty) == "ENOTEMPTY");
  CHECK(name_of(std::errc::file_exists) == "EEXIST");
  CHECK(name_of(std::errc::permission_denied) == "EACCES");
  CHECK(name_of(std::errc::operation_not_permitted) == "EPERM");
  CHECK(name_of(std::errc::invalid_argument) == "EINVAL");
  CHECK(name_of(std::errc::bad_file_descriptor) == "EBADF");
  CHECK(name_of(std::errc::not_enough_memory) == "ENOMEM");
  CHECK(name_of(std::errc::operation_canceled) == "ECANCELED");
  CHECK(name_of(std::errc::filename_too_long) == "ENAMETOOLONG");
  CHECK(name_of(std::errc::cross_device_link) == "EXDEV");
  CHECK(name_of(std::errc::not_supported) == "ENOTSUP");
  CHECK(name_of(std::errc::network_unreachable) == "ENETUNREACH");
  CHECK(name_of(std::errc::host_unreachable) == "EHOSTUNREACH");
  CHECK(name_of(std::errc::not_connected) == "ENOTCONN");
  CHECK(name_of(std::errc::already_connected) == "EISCONN");
  CHECK(name_of(std::errc::connection_aborted) == "ECONNABORTED");
  CHECK(name_of(std::errc::address_not_available) == "EADDRNOTAVAIL");
  CHECK(name_of(std::errc::no_space_on_device) == "ENOSPC");
  CHECK(name_of(std::errc::read_only_file_system) == "EROFS");
  CHECK(name_of(std::errc::too_many_symbolic_link_levels) == "ELOOP");
  // The errno macros themselves, in the generic category.
  CHECK(std::string(error_name({ENOENT, std::generic_category()})) == "ENOENT");
  CHECK(std::string(error_name({EPIPE, std::generic_category()})) == "EPIPE");
}

#if !defined(_WIN32)
TEST_CASE("error_name: on POSIX, system_category codes are errno values", "[error]") {
  CHECK(std::string(error_name({ENOENT, std::system_category()})) == "ENOENT");
  CHECK(std::string(error_name({ECONNREFUSED, std::system_category()})) == "ECONNREFUSED");
  CHECK(std::string(error_name({EMFILE, std::system_category()})) == "EMFILE");
  CHECK(std::string(error_name({ECANCELED, std::system_category()})) == "ECANCELED");
}
#else
TEST_CASE("error_name: on Windows, Winsock and Win32 codes get libuv's names", "[error]") {
  CHECK(std::string(error_name({10061, std::system_category()})) == "ECONNREFUSED");  // WSAECONNREFUSED
  CHECK(std::string(error_name({10048, std::system_category()})) == "EADDRINUSE");    // WSAEADDRINUSE
  CHECK(std::string(error_name({10054, std::system_category()})) == "ECONNRESET");    // WSAECONNRESET
  CHECK(std::string(error_name({10060, std::system_category()})) == "ETIMEDOUT");     // WSAETIMEDOUT
  CHECK(std::string(error_name({10035, std::system_category()})) == "EAGAIN");        // WSAEWOULDBLOCK
  CHECK(std::string(error_name({2, std::system_category()})) == "ENOENT");    // ERROR_FILE_NOT_FOUND
  CHECK(std::string(error_name({183, std::system_category()})) == "EEXIST");  // ERROR_ALREADY_EXISTS
  CHECK(std::string(error_name({995, std::system_category()})) == "ECANCELED");  // ERROR_OPERATION_ABORTED
}
#endif

TEST_CASE("error_name: unknown codes are UNKNOWN, a cleared code has no name", "[error]") {
  CHECK(std::string(error_name({})) == "");
  CHECK(std::string(error_name({987654, std::generic_category()})) == "UNKNOWN");
  CHECK(std::string(error_name({987654, std::system_category()})) == "UNKNOWN");
  CHECK(std::string(error_name(std::make_error_code(std::io_errc::stream))) == "UNKNOWN");
}

TEST_CASE("phaseloop::errc: the phaseloop category and Node's ERR_ names", "[error]") {
  const std::error_code too_large = phaseloop::errc::file_too_large;
  CHECK(too_large.category() == phaseloop::error_category());
  CHECK(std::string(too_large.category().name()) == "phaseloop");
  CHECK(too_large == phaseloop::errc::file_too_large);
  CHECK(too_large == std::errc::file_too_large);  // the same condition as EFBIG
  CHECK(std::string(error_name(too_large)) == "ERR_FS_FILE_TOO_LARGE");
  CHECK(std::string(error_name(phaseloop::errc::loop_gone)) == "ERR_LOOP_GONE");
  CHECK(std::string(error_name(phaseloop::errc::write_after_end)) == "ERR_STREAM_WRITE_AFTER_END");
  const std::error_code gone = make_error_code(phaseloop::errc::loop_gone);  // found by ADL
  CHECK(gone != std::errc::operation_canceled);
  CHECK_FALSE(gone.message().empty());
  CHECK(std::string(error_name({99, phaseloop::error_category()})) == "UNKNOWN");
}

// A category of the user's own that maps its codes onto errno conditions.
namespace {
class mapped_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "test.mapped"; }
  std::string message(int) const override { return "mapped"; }
  std::error_condition default_error_condition(int value) const noexcept override {
    if (value == 1) return std::errc::connection_refused;
    return {value, *this};
  }
};
}  // namespace

TEST_CASE("error_name: another category is named by its generic condition", "[error]") {
  static const mapped_category category;
  CHECK(std::string(error_name({1, category})) == "ECONNREFUSED");
  CHECK(std::string(error_name({2, category})) == "UNKNOWN");
}

#if !defined(_WIN32)
TEST_CASE("error_name: dns errors get Node's dns.lookup codes", "[error][dns]") {
  using phaseloop::dns::errc;
  CHECK(std::string(error_name(errc::not_found)) == "ENOTFOUND");
  CHECK(std::string(error_name(errc::no_data)) == "ENOTFOUND");
  CHECK(std::string(error_name(errc::try_again)) == "EAI_AGAIN");
  CHECK(std::string(error_name(errc::failure)) == "EAI_FAIL");
  CHECK(std::string(error_name(errc::bad_flags)) == "EAI_BADFLAGS");
  CHECK(std::string(error_name(errc::unsupported)) == "EAI_FAMILY");
  CHECK(std::string(error_name(errc::overflow)) == "EAI_OVERFLOW");
  CHECK(std::string(error_name(errc::bad_hostname)) == "EBADNAME");
  CHECK(std::string(error_name(errc::bad_family)) == "EBADFAMILY");
  CHECK(std::string(error_name(errc::bad_address)) == "EINVAL");
  // What the resolver's own codes become, through dns.hpp's translation.
  CHECK(std::string(error_name(phaseloop::detail::dns_ops::from_gai(EAI_NONAME, 0))) == "ENOTFOUND");
  CHECK(std::string(error_name(phaseloop::detail::dns_ops::from_gai(EAI_AGAIN, 0))) == "EAI_AGAIN");
  CHECK(std::string(error_name(phaseloop::detail::dns_ops::from_gai(EAI_SYSTEM, EMFILE))) == "EMFILE");
}

TEST_CASE("error_name: a failed lookup's code, as Node's err.code", "[error][dns]") {
  phaseloop::test_loop loop;
  std::string code;
  phaseloop::dns::lookup(loop, "", {},  // refused before the resolver is asked
                         [&](std::error_code ec, std::vector<phaseloop::dns::lookup_address>) {
                           code = error_name(ec);
                         });
  loop.run();
  CHECK(code == "EBADNAME");
}
#endif
