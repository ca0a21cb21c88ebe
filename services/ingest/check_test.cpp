#include "services/ingest/check.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <sstream>

#include "services/ingest/test_fixtures.h"

namespace amparo::ingest {
namespace {

using testing_support::Fixture;

std::vector<boost::json::object> Lines(const std::string& text) {
  std::vector<boost::json::object> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(boost::json::parse(line).as_object());
  return out;
}

TEST(CheckTest, PrintsEventsAndRejectionsAndExitsOneOnAnyRejection) {
  std::ostringstream out, err;
  const std::string update = Fixture("cap/oasis-spec-examples/v1dot2_appendix_adot3.xml").string();
  const std::string xee = Fixture("cap/google-cap-library/xee.cap").string();
  EXPECT_EQ(RunCheck({update, xee}, false, out, err), 1);
  auto lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].at("file").as_string(), update);
  EXPECT_EQ(lines[0].at("format").as_string(), "cap");
  EXPECT_EQ(lines[0].at("source").as_string(), "cap");
  EXPECT_EQ(lines[0].at("event_id").as_string(), "cap:trinet@caltech.edu:TRI13970876.1");
  EXPECT_EQ(lines[0].at("status").as_string(), "Actual");
  EXPECT_EQ(lines[0].at("msgType").as_string(), "Update");
  EXPECT_EQ(lines[0].at("hazard").as_string(), "earthquake");
  EXPECT_EQ(lines[0].at("severity").as_string(), "minor");
  EXPECT_EQ(lines[0].at("sent").as_string(), "2003-06-12T03:56:00.000Z");
  EXPECT_EQ(lines[0].at("areas").as_array().at(0).as_object().at("circles").as_int64(), 1);
  EXPECT_EQ(lines[1].at("rejected").as_bool(), true);
  EXPECT_EQ(lines[1].at("reason").as_string(), "xml: DOCTYPE declares entities: refused (external entity attacks)");
  EXPECT_EQ(err.str(), "");
}

TEST(CheckTest, LenientAcceptsKnownDeviationsWithWarningsOnErr) {
  const std::string file = Fixture("cap/kde-kweathercore/thunderstorm.xml").string();
  std::ostringstream out, err;
  EXPECT_EQ(RunCheck({file}, false, out, err), 1);
  std::ostringstream lenient_out, lenient_err;
  EXPECT_EQ(RunCheck({file}, true, lenient_out, lenient_err), 0);
  EXPECT_EQ(Lines(lenient_out.str()).size(), 1u);
  EXPECT_NE(lenient_err.str().find(file + ": warning value-valuename-order: alert area geocode"), std::string::npos)
      << lenient_err.str();
}

TEST(CheckTest, AllAcceptedExitsZeroAndReportsEntryRejections) {
  std::ostringstream out, err;
  EXPECT_EQ(RunCheck({Fixture("gdacs/cap-kontur/gdacs.xml").string()}, false, out, err), 0);
  EXPECT_EQ(Lines(out.str()).size(), 59u);
  EXPECT_NE(err.str().find("entry rejected: entry[15].alert.info[0].area[0].polygon[0]: longitude -180.03 out of "
                           "range -180..180 (id GDACS_EQ_1278992_1387897)"),
            std::string::npos)
      << err.str();
}

}  // namespace
}  // namespace amparo::ingest
