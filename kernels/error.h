// Typed errors shared by every layer. Library code throws these and never exits;
// the CLI turns them into one message and a non-zero exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace eqprop {

// Base of every error eqprop reports to a user.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// A config key that is unknown, mistyped or out of range.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A data file that is missing, truncated or in the wrong format.
class DataError : public Error {
 public:
  using Error::Error;
};

// A checkpoint that cannot be written, read, or does not fit the model.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

// A device that is absent or a CUDA / cuBLAS call that failed.
class DeviceError : public Error {
 public:
  using Error::Error;
};

// NaN or Inf in the states or the parameters: training cannot continue.
class DivergenceError : public Error {
 public:
  using Error::Error;
};

}  // namespace eqprop
