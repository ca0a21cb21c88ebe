#include "common/json_text.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <limits>

namespace amparo {
namespace {

TEST(JsonTextTest, PrintsShortestRoundTripNumbers) {
  boost::json::object o{{"lat", 14.5995}, {"n", 3}, {"neg", -0.25}, {"big", 1e21}};
  EXPECT_EQ(JsonText(o), R"({"lat":14.5995,"n":3,"neg":-0.25,"big":1e+21})");
  EXPECT_DOUBLE_EQ(boost::json::parse(JsonText(o)).as_object()["lat"].as_double(), 14.5995);
}

TEST(JsonTextTest, EscapesStringsAndNullsNonFiniteNumbers) {
  boost::json::array a{"quote\" and \\ and \n", std::numeric_limits<double>::infinity(), nullptr, true};
  EXPECT_EQ(JsonText(a), R"(["quote\" and \\ and \n",null,null,true])");
}

}  // namespace
}  // namespace amparo
