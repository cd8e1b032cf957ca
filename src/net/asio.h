// The one way Fjord includes Boost.Asio. Asio is compiled once, in asio.cc
// (BOOST_ASIO_SEPARATE_COMPILATION, set for the whole build), instead of in
// every file that uses it.
#pragma once

#include <boost/asio.hpp>

namespace fjord::net {
namespace asio = boost::asio;
}  // namespace fjord::net
