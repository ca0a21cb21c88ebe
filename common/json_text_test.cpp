#include "common/json_text.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

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

TEST(JsonTextTest, AppendJsonStringWritesWhatBoostJsonWrites) {
  // Every byte value alone and amid text, keys included: the direct writer
  // and the DOM's serializer must give the same bytes (webhook signatures,
  // stored alerts compared across versions).
  std::vector<std::string> cases = {"", "plain", "caf\xc3\xa9 \xe2\x82\xac", "a\"b\\c/d", "\x7f\x1f\x01end"};
  for (int c = 0; c < 256; ++c) {
    cases.push_back(std::string(1, static_cast<char>(c)));
    cases.push_back("x" + std::string(1, static_cast<char>(c)) + "y");
  }
  for (const std::string& text : cases) {
    std::string out = "prefix";
    AppendJsonString(out, text);
    EXPECT_EQ(out, "prefix" + boost::json::serialize(boost::json::string(text))) << "byte string of size " << text.size();
    boost::json::object o;
    o[text] = text;
    EXPECT_EQ(JsonText(o), boost::json::serialize(o));
  }
}

}  // namespace
}  // namespace amparo
