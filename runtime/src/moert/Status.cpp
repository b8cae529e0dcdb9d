//===- Status.cpp - Error values of the runtime ------------------------===//
#include "moert/Status.h"

namespace moert {

const char *statusCodeName(StatusCode code) {
  switch (code) {
  case StatusCode::Ok:
    return "Ok";
  case StatusCode::InvalidArgument:
    return "InvalidArgument";
  case StatusCode::OutOfRange:
    return "OutOfRange";
  case StatusCode::NotFound:
    return "NotFound";
  case StatusCode::AlreadyExists:
    return "AlreadyExists";
  case StatusCode::FailedPrecondition:
    return "FailedPrecondition";
  case StatusCode::ResourceExhausted:
    return "ResourceExhausted";
  case StatusCode::DataLoss:
    return "DataLoss";
  case StatusCode::Unimplemented:
    return "Unimplemented";
  case StatusCode::Unavailable:
    return "Unavailable";
  case StatusCode::Internal:
    return "Internal";
  }
  return "Unknown";
}

Status &Status::withContext(const std::string &context) {
  if (!ok())
    message_ = context + ": " + message_;
  return *this;
}

Status &Status::addTraceLocation(const char *file, int line) {
  if (!ok())
    trace_.push_back(std::string(file) + ":" + std::to_string(line));
  return *this;
}

std::string Status::toString() const {
  if (ok())
    return "Ok";
  std::string text = std::string(statusCodeName(code_)) + ": " + message_;
  if (!trace_.empty()) {
    text += " [at";
    for (const std::string &location : trace_)
      text += " " + location;
    text += "]";
  }
  return text;
}

} // namespace moert
