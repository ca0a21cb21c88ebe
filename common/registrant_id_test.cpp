#include "common/registrant_id.h"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "common/alert_json.h"

namespace amparo {
namespace {

constexpr char kId1[] = "0123456789abcdef0123456789abcdef";
constexpr char kId2[] = "fedcba9876543210ffeeddccbbaa0099";

std::string Packed(std::string_view hex) {
  PackedRegistrantId id;
  EXPECT_TRUE(ParseRegistrantId(hex, &id)) << hex;
  return std::string(reinterpret_cast<const char*>(id.data()), id.size());
}

TEST(RegistrantIdTest, ParsesOnlyThirtyTwoLowercaseHexAndFormatsBack) {
  PackedRegistrantId id;
  ASSERT_TRUE(ParseRegistrantId(kId2, &id));
  EXPECT_EQ(id[0], 0xfe);
  EXPECT_EQ(id[15], 0x99);
  EXPECT_EQ(FormatRegistrantId(id), kId2);
  EXPECT_FALSE(ParseRegistrantId("0123456789ABCDEF0123456789abcdef", &id));  // upper case
  EXPECT_FALSE(ParseRegistrantId("0123456789abcdef0123456789abcde", &id));   // 31
  EXPECT_FALSE(ParseRegistrantId("0123456789abcdef0123456789abcdef0", &id)); // 33
  EXPECT_FALSE(ParseRegistrantId("0123456789abcdef0123456789abcdeg", &id));  // not hex
  EXPECT_FALSE(ParseRegistrantId("", &id));
}

TEST(RegistrantIdTest, AnAlertsIdsComeFromThePackedFieldOrFromTheOldStrings) {
  v1::ConsularAlert packed;
  packed.set_registrant_ids_packed(Packed(kId1) + Packed(kId2));
  EXPECT_EQ(AlertRegistrantIdCount(packed), 2u);
  EXPECT_EQ(AlertRegistrantIds(packed), (std::vector<std::string>{kId1, kId2}));

  v1::ConsularAlert old;  // written before the packed field
  old.add_registrant_ids(kId2);
  old.add_registrant_ids(kId1);
  EXPECT_EQ(AlertRegistrantIdCount(old), 2u);
  EXPECT_EQ(AlertRegistrantIds(old), (std::vector<std::string>{kId2, kId1}));

  v1::ConsularAlert none;
  EXPECT_EQ(AlertRegistrantIdCount(none), 0u);
  EXPECT_TRUE(AlertRegistrantIds(none).empty());

  v1::ConsularAlert torn;  // a fragment is not an id
  torn.set_registrant_ids_packed(Packed(kId1) + "\x01\x02\x03");
  EXPECT_EQ(AlertRegistrantIdCount(torn), 1u);
  EXPECT_EQ(AlertRegistrantIds(torn), std::vector<std::string>{kId1});
}

TEST(RegistrantIdTest, AnOldAlertsIdsArePackedOnlyWhenEveryOneIsAnId) {
  v1::ConsularAlert old;
  old.add_registrant_ids(kId1);
  old.add_registrant_ids(kId2);
  v1::ConsularAlert now;
  now.set_registrant_ids_packed(Packed(kId1) + Packed(kId2));
  ASSERT_TRUE(PackAlertRegistrantIds(&old));
  EXPECT_EQ(old.SerializeAsString(), now.SerializeAsString());

  v1::ConsularAlert odd;
  odd.add_registrant_ids(kId1);
  odd.add_registrant_ids("not-an-id");
  EXPECT_FALSE(PackAlertRegistrantIds(&odd));
  EXPECT_EQ(odd.registrant_ids_size(), 2);
  EXPECT_TRUE(odd.registrant_ids_packed().empty());
}

TEST(RegistrantIdTest, TheJsonOfPackedIdsIsTheJsonOfTheSameIdsAsStrings) {
  v1::ConsularAlert packed;
  v1::ConsularAlert old;
  packed.set_alert_id("usgs:x/PHL/JPN");
  old.set_alert_id("usgs:x/PHL/JPN");
  for (int i = 0; i < 300; ++i) {
    std::string hex = FormatRegistrantId(PackedRegistrantId{static_cast<uint8_t>(i), 0xab, static_cast<uint8_t>(i * 7)});
    packed.mutable_registrant_ids_packed()->append(Packed(hex));
    old.add_registrant_ids(hex);
  }
  const std::string text = AlertToJson(packed);
  EXPECT_EQ(text, AlertToJson(old));
  const auto ids = boost::json::parse(text).as_object().at("registrant_ids").as_array();
  ASSERT_EQ(ids.size(), 300u);
  EXPECT_EQ(ids[0].as_string(), "00ab0000000000000000000000000000");
  EXPECT_EQ(ids[299].as_string(), AlertRegistrantIds(packed)[299]);

  std::string json;
  AppendAlertRegistrantIdsJson(v1::ConsularAlert(), &json);
  EXPECT_EQ(json, "[]");
  v1::ConsularAlert one;
  one.set_registrant_ids_packed(Packed("0123456789abcdef0123456789abcdef"));
  json = "x";
  AppendAlertRegistrantIdsJson(one, &json);
  EXPECT_EQ(json, R"(x["0123456789abcdef0123456789abcdef"])");
}

}  // namespace
}  // namespace amparo
