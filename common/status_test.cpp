#include "common/status.h"

#include <gtest/gtest.h>

namespace amparo {
namespace {

TEST(StatusTest, OkByDefault) {
  Status st;
  EXPECT_TRUE(st.ok());
  EXPECT_EQ(st.ToString(), "OK");
}

TEST(StatusTest, CarriesCodeFieldAndMessage) {
  Status st = InvalidArgument("must be within -90..90", "lat");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.ToString(), "INVALID_ARGUMENT: lat: must be within -90..90");
  EXPECT_FALSE(st.IsRetryable());
  EXPECT_TRUE(Unavailable("peer down").IsRetryable());
}

TEST(StatusTest, ResultHoldsValueOrStatus) {
  Result<int> good = 7;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);
  Result<int> bad = NotFound("no such registrant");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace amparo
