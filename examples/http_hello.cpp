// http_hello: a small HTTP/1.1 server on phaseloop::net that answers every
// request with "Hello, world!".
//
//   http_hello 8080      serve on 127.0.0.1:8080 until killed;
//                        try it: curl -i http://127.0.0.1:8080/
//   http_hello           self-check: serve on a free port, send two pipelined
//                        requests from a client in the same loop, check both
//                        answers, then exit (0 when they were right)
//
// What it shows: a per-connection buffer that requests are parsed from (one
// read may bring several pipelined requests, or part of one), responses
// written in order, keep-alive (HTTP/1.1's default; HTTP/1.0 only when asked
// for), `Connection: close` answered and then ended, 400 Bad Request for
// malformed requests or a header section over 8 KiB, backpressure (a client
// that pipelines without reading its responses stops being read), and an idle
// timeout for connections kept alive (Node's keepAliveTimeout).

#include <phaseloop/phaseloop.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace net = phaseloop::net;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t max_header_bytes = 8 * 1024;  // request line, headers and the blank line
constexpr std::size_t max_body_bytes = 1024 * 1024;  // a body is read and ignored
constexpr std::string_view hello = "Hello, world!";

// ------------------------------------------------------------- parsing

/// The request at the front of a connection's buffer.
struct request {
  enum { incomplete, complete, bad } state = incomplete;
  std::size_t length = 0;  // bytes it takes in the buffer, headers and body
  bool head = false;       // HEAD: the headers of the response, no body
  bool keep_alive = true;
};

bool is_token(std::string_view s) {  // RFC 9110's token: method and header names
  constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || extra.find(c) != std::string_view::npos;
  });
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  });
}

std::string_view trim(std::string_view s) {  // optional whitespace around a value
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// Whether a comma-separated header value ("keep-alive, Upgrade") holds `token`.
bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
  }
  return false;
}

/// Parse the request at the front of `in` (which may hold less, or more).
request parse_request(std::string_view in) {
  request r;
  const std::size_t blank = in.find("\r\n\r\n");
  if (blank == std::string_view::npos) {  // not all of the header section is here yet
    if (in.size() >= max_header_bytes) r.state = request::bad;
    return r;
  }
  const std::size_t header_bytes = blank + 4;
  if (header_bytes > max_header_bytes) return {request::bad};
  std::string_view lines = in.substr(0, blank + 2);  // each line ends with CRLF
  auto next_line = [&lines] {
    const std::size_t eol = lines.find("\r\n");
    const std::string_view line = lines.substr(0, eol);
    lines.remove_prefix(eol + 2);
    return line;
  };

  // The request line: METHOD SP target SP HTTP/1.x
  const std::string_view line = next_line();
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) return {request::bad};
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  const bool controls = std::any_of(target.begin(), target.end(), [](char c) {
    return static_cast<unsigned char>(c) <= ' ' || c == '\x7f';
  });
  if (!is_token(method) || target.empty() || controls) return {request::bad};
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return {request::bad};
  const bool http10 = version == "HTTP/1.0";
  r.head = method == "HEAD";

  // Header fields: name ":" OWS value OWS
  bool host = false;
  bool have_length = false;
  std::size_t body = 0;
  std::string_view connection;
  while (!lines.empty()) {
    const std::string_view field = next_line();
    const std::size_t colon = field.find(':');
    if (colon == std::string_view::npos || !is_token(field.substr(0, colon))) return {request::bad};
    const std::string_view name = field.substr(0, colon);
    const std::string_view value = trim(field.substr(colon + 1));
    if (iequals(name, "host")) {
      if (host) return {request::bad};
      host = true;
    } else if (iequals(name, "connection")) {
      connection = value;
    } else if (iequals(name, "content-length")) {
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), body);
      if (have_length || value.empty() || ec != std::errc{} || end != value.data() + value.size() ||
          body > max_body_bytes)
        return {request::bad};
      have_length = true;
    } else if (iequals(name, "transfer-encoding")) {
      return {request::bad};  // chunked bodies are not read here: the request cannot be framed
    }
  }
  if (!http10 && !host) return {request::bad};  // HTTP/1.1 requires Host

  if (in.size() < header_bytes + body) return r;  // the body is still coming
  r.state = request::complete;
  r.length = header_bytes + body;
  r.keep_alive = http10 ? has_token(connection, "keep-alive") : !has_token(connection, "close");
  return r;
}

// ------------------------------------------------------------ responses

std::string hello_response(bool keep_alive, bool head) {
  std::string r = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ";
  r += std::to_string(hello.size());
  r += keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
  if (!head) r += hello;
  return r;
}

constexpr std::string_view bad_request =
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
    "Connection: close\r\n\r\nBad Request";

// ---------------------------------------------------------- connections

struct connection {
  explicit connection(net::socket s) : socket(s) {}

  net::socket socket;
  std::string buffer;  // bytes read and not parsed yet
  bool done = false;   // answered its last request: whatever else comes is ignored

  /// Answer the complete requests in the buffer, in order.
  void answer() {
    std::size_t used = 0;
    while (!done && !socket.paused()) {
      const request r = parse_request(std::string_view(buffer).substr(used));
      if (r.state == request::incomplete) break;
      if (r.state == request::bad) {
        socket.end(bad_request);
        done = true;
        break;
      }
      used += r.length;
      const bool below_high_water = socket.write(hello_response(r.keep_alive, r.head));
      if (!r.keep_alive) {
        socket.end();  // closes once the response went and the peer ended too
        done = true;
      } else if (!below_high_water) {
        socket.pause();  // the client does not read its responses: stop reading until they drain
      }
    }
    buffer.erase(0, used);
  }
};

void serve(net::socket s) {
  auto c = std::make_shared<connection>(s);
  s.set_no_delay();  // each response goes out at once (Node's http default)
  s.set_timeout(5s);
  s.on_timeout([s]() mutable { s.destroy(); });  // idle for 5 s: close it
  s.on_data([c](std::span<const std::byte> bytes) {
    if (c->done) return;
    c->buffer.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    c->answer();
  });
  s.on_drain([c] {
    c->socket.resume();
    c->answer();  // the requests left in the buffer while paused
  });
}

net::server start_http_server(phaseloop::loop& loop, std::uint16_t port, std::error_code& ec) {
  auto server = net::create_server(loop, serve);
  ec = server.listen(port, "127.0.0.1");
  return server;
}

// ----------------------------------------------------------- self-check

/// Two pipelined requests in one write: two responses, then the server closes.
int self_check() {
  phaseloop::loop loop;
  std::error_code ec;
  auto server = start_http_server(loop, 0, ec);
  if (ec) {
    std::fprintf(stderr, "http_hello: listen: %s\n", ec.message().c_str());
    return 1;
  }
  std::string received;
  auto client = net::connect(loop, server.local_address());
  client.on_connect([client]() mutable {
    client.write(
        "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
        "GET /again HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  });
  client.on_data([&](std::span<const std::byte> bytes) {
    received.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  });
  client.on_error([](std::error_code e) { std::fprintf(stderr, "http_hello: client: %s\n", e.message().c_str()); });
  client.on_close([&](bool) { server.close(); });  // nothing is left: run() returns
  loop.set_timeout([&] { loop.stop(); }, 10s).unref();  // a safety net, should it hang
  loop.run();

  const std::string expected = hello_response(true, false) + hello_response(false, false);
  if (received != expected) {
    std::fprintf(stderr, "http_hello: expected\n%s\n--- got ---\n%s\n", expected.c_str(), received.c_str());
    return 1;
  }
  std::printf("http_hello: 2 pipelined requests answered in order (%zu bytes)\n", received.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return self_check();
  const std::string_view arg = argv[1];
  std::uint16_t port = 0;
  const auto [end, parse_error] = std::from_chars(arg.data(), arg.data() + arg.size(), port);
  if (argc > 2 || parse_error != std::errc{} || end != arg.data() + arg.size()) {
    std::fprintf(stderr, "usage: http_hello [PORT]\n");
    return 2;
  }
  phaseloop::loop loop;
  std::error_code ec;
  auto server = start_http_server(loop, port, ec);
  if (ec) {
    std::fprintf(stderr, "http_hello: listen on 127.0.0.1:%u: %s\n", unsigned{port}, ec.message().c_str());
    return 1;
  }
  std::printf("http_hello: listening on http://%s/\n", server.local_address().to_string().c_str());
  std::fflush(stdout);
  loop.run();  // until killed
}
