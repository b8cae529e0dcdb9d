//===- StatusTest.cpp - Status, Expected and the propagation macros -----===//
#include "moert/Status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace moert {
namespace {

Status failIfNegative(int value) {
  if (value < 0)
    return outOfRange("expected a non-negative value, found " +
                      std::to_string(value));
  return Status::success();
}

Status propagate(int value, bool *reachedEnd) {
  MOERT_RETURN_IF_ERROR(failIfNegative(value));
  *reachedEnd = true;
  return Status::success();
}

Expected<int> half(int value) {
  if (value % 2 != 0)
    return invalidArgument("expected an even value, found " +
                           std::to_string(value));
  return value / 2;
}

Expected<int> quarter(int value) {
  MOERT_ASSIGN_OR_RETURN(int halved, half(value));
  MOERT_ASSIGN_OR_RETURN(halved, half(halved));
  return halved;
}

TEST(Status, DefaultIsOk) {
  Status status;
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::Ok);
  EXPECT_EQ(status.toString(), "Ok");
}

TEST(Status, CarriesCodeAndMessage) {
  Status status = dataLoss("plan truncated: expected 128 bytes, found 64");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::DataLoss);
  EXPECT_EQ(status.toString(),
            "DataLoss: plan truncated: expected 128 bytes, found 64");
}

TEST(Status, ContextIsPrepended) {
  Status status = invalidArgument("bad shape");
  status.withContext("loading plan.bin");
  EXPECT_EQ(status.message(), "loading plan.bin: bad shape");
  Status success;
  success.withContext("ignored");
  EXPECT_EQ(success.message(), "");
}

TEST(Status, CodeNamesAreDistinct) {
  EXPECT_STREQ(statusCodeName(StatusCode::InvalidArgument), "InvalidArgument");
  EXPECT_STREQ(statusCodeName(StatusCode::OutOfRange), "OutOfRange");
  EXPECT_STREQ(statusCodeName(StatusCode::Unimplemented), "Unimplemented");
  EXPECT_STREQ(statusCodeName(StatusCode::Internal), "Internal");
}

TEST(Status, ReturnIfErrorStopsAndRecordsLocation) {
  bool reachedEnd = false;
  Status status = propagate(-3, &reachedEnd);
  EXPECT_FALSE(reachedEnd);
  EXPECT_EQ(status.code(), StatusCode::OutOfRange);
  EXPECT_EQ(status.message(), "expected a non-negative value, found -3");
  ASSERT_EQ(status.trace().size(), 1u);
  EXPECT_NE(status.trace()[0].find("StatusTest.cpp:"), std::string::npos);
  EXPECT_NE(status.toString().find("[at "), std::string::npos);

  EXPECT_TRUE(propagate(2, &reachedEnd).ok());
  EXPECT_TRUE(reachedEnd);
}

TEST(Expected, ValueAndFailure) {
  Expected<int> good = quarter(12);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 3);

  Expected<int> bad = quarter(6); // 6 -> 3, then 3 is odd
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::InvalidArgument);
  EXPECT_EQ(bad.status().message(), "expected an even value, found 3");
  EXPECT_EQ(bad.status().trace().size(), 1u);
}

TEST(Expected, HoldsMoveOnlyValues) {
  Expected<std::unique_ptr<int>> pointer(std::make_unique<int>(7));
  ASSERT_TRUE(pointer.ok());
  std::unique_ptr<int> taken = std::move(pointer).value();
  EXPECT_EQ(*taken, 7);
}

TEST(Expected, OkStatusWithoutValueBecomesInternalError) {
  Expected<int> misuse{Status::success()};
  EXPECT_FALSE(misuse.ok());
  EXPECT_EQ(misuse.status().code(), StatusCode::Internal);
}

} // namespace
} // namespace moert
