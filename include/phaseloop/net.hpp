#pragma once
// phaseloop::net: Node's net module. TCP and Unix domain servers and
// sockets, and streams over existing descriptors (pipes), with Node's events,
// write queue and backpressure, on every backend (and on the mock's virtual
// network in tests).

#include <phaseloop/net/address.hpp>
#include <phaseloop/net/server.hpp>
#include <phaseloop/net/stream.hpp>
#include <phaseloop/net/tcp.hpp>
#include <phaseloop/net/unix.hpp>
