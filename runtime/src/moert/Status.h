//===- Status.h - Error values of the runtime --------------------------===//
//
// The runtime reports every failure that user input can cause (a malformed
// plan, a wrong shape, an out-of-range index) as a value, never by aborting:
// a process that runs a training job must be able to print a clear message
// and exit cleanly. `Status` carries a code and a message that says what was
// expected, what was found and where; `Expected<T>` is a value or a failed
// Status. MOERT_RETURN_IF_ERROR / MOERT_ASSIGN_OR_RETURN propagate failures
// and record the source location of each hop, so a message printed at the
// top says how it got there without a debugger.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_STATUS_H
#define MOERT_STATUS_H

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace moert {

/// What kind of failure. The names follow the common (absl/IREE) canon so
/// that callers can map them to exit codes or retry policies.
enum class StatusCode {
  Ok = 0,
  InvalidArgument,    // a value or shape the caller passed is wrong
  OutOfRange,         // an index or size beyond its valid range
  NotFound,           // a named thing (file, tensor, symbol) does not exist
  AlreadyExists,      // creating something that is already there
  FailedPrecondition, // the system is not in the state the call needs
  ResourceExhausted,  // out of memory, arena too small
  DataLoss,           // corrupt or truncated data (files, plans)
  Unimplemented,      // a valid request this build does not support
  Unavailable,        // a transient failure (a peer, a device)
  Internal,           // an invariant of the runtime itself broke
};

/// "InvalidArgument", ...
const char *statusCodeName(StatusCode code);

class [[nodiscard]] Status {
public:
  /// Success.
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status success() { return Status(); }

  bool ok() const { return code_ == StatusCode::Ok; }
  StatusCode code() const { return code_; }
  const std::string &message() const { return message_; }
  /// Source locations ("file:line") the failure passed through, innermost
  /// first; filled by MOERT_RETURN_IF_ERROR.
  const std::vector<std::string> &trace() const { return trace_; }

  /// Prepends `context` to the message ("loading plan: " + message) so
  /// that an outer layer can say what it was doing. No-op on success.
  Status &withContext(const std::string &context);
  /// Records one propagation hop; no-op on success.
  Status &addTraceLocation(const char *file, int line);

  /// "InvalidArgument: <message>" (plus the trace, if any); "Ok" on success.
  std::string toString() const;

private:
  StatusCode code_ = StatusCode::Ok;
  std::string message_;
  std::vector<std::string> trace_;
};

// Shorthands that read well at the failure site.
inline Status invalidArgument(std::string message) {
  return Status(StatusCode::InvalidArgument, std::move(message));
}
inline Status outOfRange(std::string message) {
  return Status(StatusCode::OutOfRange, std::move(message));
}
inline Status dataLoss(std::string message) {
  return Status(StatusCode::DataLoss, std::move(message));
}
inline Status unimplemented(std::string message) {
  return Status(StatusCode::Unimplemented, std::move(message));
}
inline Status internalError(std::string message) {
  return Status(StatusCode::Internal, std::move(message));
}
inline Status failedPrecondition(std::string message) {
  return Status(StatusCode::FailedPrecondition, std::move(message));
}

/// A value of type T, or the Status that explains why there is none.
template <typename T> class [[nodiscard]] Expected {
public:
  Expected(T value) : value_(std::move(value)) {}
  /// A failure; constructing an Expected from an ok Status is a bug of the
  /// caller and is turned into an Internal error rather than a crash.
  Expected(Status status) : status_(std::move(status)) {
    if (status_.ok())
      (void)(status_ = internalError("Expected<T> constructed from an ok "
                                     "Status without a value"));
  }

  bool ok() const { return value_.has_value(); }
  const Status &status() const { return status_; }
  /// Moves the failure out (for propagation).
  Status takeStatus() { return std::move(status_); }

  // Accessing the value of a failure is a programming error; it fails fast
  // (std::optional's checked access) instead of reading garbage.
  T &value() & { return value_.value(); }
  const T &value() const & { return value_.value(); }
  T &&value() && { return std::move(value_).value(); }
  T &operator*() & { return value(); }
  const T &operator*() const & { return value(); }
  T *operator->() { return &value(); }
  const T *operator->() const { return &value(); }

private:
  std::optional<T> value_;
  Status status_;
};

namespace detail {
inline Status &&addTrace(Status &&status, const char *file, int line) {
  status.addTraceLocation(file, line);
  return std::move(status);
}
} // namespace detail

} // namespace moert

#define MOERT_STATUS_CONCAT_INNER(a, b) a##b
#define MOERT_STATUS_CONCAT(a, b) MOERT_STATUS_CONCAT_INNER(a, b)

/// Evaluates `expr` (a Status); on failure returns it from the enclosing
/// function (which returns Status or Expected<T>), recording this location.
#define MOERT_RETURN_IF_ERROR(expr)                                            \
  do {                                                                         \
    ::moert::Status moertStatusTmp_ = (expr);                                  \
    if (!moertStatusTmp_.ok())                                                 \
      return ::moert::detail::addTrace(std::move(moertStatusTmp_), __FILE__,   \
                                       __LINE__);                              \
  } while (false)

/// `MOERT_ASSIGN_OR_RETURN(auto value, computeExpected());` declares (or
/// assigns) `value` from an Expected<T>, or returns its failure.
#define MOERT_ASSIGN_OR_RETURN(lhs, expr)                                      \
  MOERT_ASSIGN_OR_RETURN_IMPL(MOERT_STATUS_CONCAT(moertExpected_, __LINE__),   \
                              lhs, expr)
#define MOERT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                            \
  auto tmp = (expr);                                                           \
  if (!tmp.ok())                                                               \
    return ::moert::detail::addTrace(tmp.takeStatus(), __FILE__, __LINE__);    \
  lhs = std::move(tmp).value()

#endif // MOERT_STATUS_H
