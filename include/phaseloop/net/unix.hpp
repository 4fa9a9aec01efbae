#pragma once
// Unix domain sockets: servers listen on a path (removed again when the
// server closes) or, on Linux, a name in the abstract namespace; clients
// connect to one. The streams are net::socket, as TCP's.
//
//   auto server = net::create_server(loop, on_connection);
//   server.listen(net::address::unix_path("/run/app.sock"));
//   auto s = net::connect_unix(loop, "/run/app.sock");

#include <phaseloop/net/address.hpp>
#include <phaseloop/net/server.hpp>
#include <phaseloop/net/stream.hpp>
#include <phaseloop/net/tcp.hpp>

#include <string_view>
#include <system_error>

namespace phaseloop::net {

/// Connect to the Unix domain socket at `path` ("@name": the abstract
/// namespace). A path too long for sun_path fails with filename_too_long.
inline socket connect_unix(loop_core& loop, std::string_view path, connect_options options = {}) {
  address a;
  std::error_code ec = !path.empty() && path.front() == '@' ? address::parse_abstract(path.substr(1), a)
                                                           : address::parse_unix_path(path, a);
  if (ec) {
    using phaseloop::detail::stream_ops;
    auto& r = stream_ops::make(loop, phaseloop::detail::stream_kind::local, invalid_handle);
    loop.activate(r);
    socket s(r);
    stream_ops::destroy(r, ec);
    return s;
  }
  return connect(loop, a, options);
}

}  // namespace phaseloop::net
