#pragma once

#include <stdexcept>
#include <string>

namespace unetseg {

// Everything the library refuses is reported as an Error whose message is meant for a person:
// it names the file (and field) concerned and the reason.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace unetseg
