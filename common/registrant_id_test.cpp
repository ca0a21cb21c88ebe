#include "common/registrant_id.h"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <random>

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

TEST(RegistrantIdTest, AnAlertsIdsComeFromTheCodedOrThePackedFieldOrFromTheOldStrings) {
  v1::ConsularAlert coded;
  coded.set_registrant_ids_coded(CodeRegistrantIds(Packed(kId2) + Packed(kId1)));
  EXPECT_EQ(AlertRegistrantIdCount(coded), 2u);
  EXPECT_EQ(AlertRegistrantIds(coded), (std::vector<std::string>{kId2, kId1}));

  v1::ConsularAlert packed;  // written before the coded field
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

TEST(RegistrantIdTest, AnOldAlertsIdsAreCodedOnlyWhenEveryOneIsAnId) {
  v1::ConsularAlert now;
  now.set_registrant_ids_coded(CodeRegistrantIds(Packed(kId1) + Packed(kId2)));
  v1::ConsularAlert strings;
  strings.add_registrant_ids(kId1);
  strings.add_registrant_ids(kId2);
  ASSERT_TRUE(CodeAlertRegistrantIds(&strings));
  EXPECT_EQ(strings.SerializeAsString(), now.SerializeAsString());
  v1::ConsularAlert packed;
  packed.set_registrant_ids_packed(Packed(kId1) + Packed(kId2));
  ASSERT_TRUE(CodeAlertRegistrantIds(&packed));
  EXPECT_EQ(packed.SerializeAsString(), now.SerializeAsString());
  v1::ConsularAlert again = now;
  ASSERT_TRUE(CodeAlertRegistrantIds(&again));
  EXPECT_EQ(again.SerializeAsString(), now.SerializeAsString());

  v1::ConsularAlert odd;
  odd.add_registrant_ids(kId1);
  odd.add_registrant_ids("not-an-id");
  EXPECT_FALSE(CodeAlertRegistrantIds(&odd));
  EXPECT_EQ(odd.registrant_ids_size(), 2);
  EXPECT_TRUE(odd.registrant_ids_coded().empty());
}

TEST(RegistrantIdTest, FrontCodingKeepsEachIdsBytesAfterThoseItSharesWithTheIdBefore) {
  // Two ids of one gateway sequence (80-bit prefix, 48-bit counter) share 15
  // bytes: one count byte and the last byte.
  const std::string a = Packed("0123456789abcdef0123000000000041");
  const std::string b = Packed("0123456789abcdef0123000000000042");
  const std::string c = Packed("0123456789abcdef0123000000000142");
  const std::string coded = CodeRegistrantIds(a + b + c + c);
  // The first id against 16 zero bytes (a leading 0x00 would be shared).
  const std::string expected = std::string(1, '\0') + a + std::string("\x0f\x42", 2) +
                               std::string("\x0e\x01\x42", 3) + std::string(1, '\x10');
  EXPECT_EQ(coded, expected);
  std::string back;
  ASSERT_TRUE(DecodeRegistrantIds(coded, &back));
  EXPECT_EQ(back, a + b + c + c);
  EXPECT_EQ(CodeRegistrantIds(Packed("000000000000000000000000000000ff")), std::string("\x0f\xff", 2));
  EXPECT_EQ(CodeRegistrantIds(""), "");
  EXPECT_EQ(CodeRegistrantIds(a + "\x01\x02"), std::string(1, '\0') + a);  // a fragment is not an id

  // Sorted ids of one sequence, as an alert lists them, take a fifth of
  // their packed bytes or less; random ids at most one byte more each.
  std::mt19937_64 random(7);
  std::string sequence, scattered;
  const uint64_t prefix = random();
  uint64_t counter = random() & 0xFFFF'FFFF'0000ull;
  for (int i = 0; i < 1000; ++i) {
    counter += 1 + random() % 200;
    PackedRegistrantId id{};
    for (int k = 0; k < 8; ++k) id[k] = static_cast<uint8_t>(prefix >> (56 - 8 * k));
    for (int k = 0; k < 8; ++k) id[8 + k] = static_cast<uint8_t>(counter >> (56 - 8 * k));
    sequence.append(reinterpret_cast<const char*>(id.data()), id.size());
    for (auto& byte : id) byte = static_cast<uint8_t>(random());
    scattered.append(reinterpret_cast<const char*>(id.data()), id.size());
  }
  for (const std::string* packed : {&sequence, &scattered}) {
    const std::string list = CodeRegistrantIds(*packed);
    std::string decoded;
    ASSERT_TRUE(DecodeRegistrantIds(list, &decoded));
    EXPECT_EQ(decoded, *packed);
    EXPECT_LE(list.size(), 17'000u);
  }
  EXPECT_LE(CodeRegistrantIds(sequence).size(), 16'000u / 5);
}

TEST(RegistrantIdTest, ACodedListCutShortOrWithACountOverSixteenDecodesUpToTheFault) {
  const std::string coded = CodeRegistrantIds(Packed(kId1) + Packed(kId2));
  std::string packed;
  EXPECT_FALSE(DecodeRegistrantIds(coded.substr(0, coded.size() - 1), &packed));
  EXPECT_EQ(packed, Packed(kId1));
  packed.clear();
  EXPECT_FALSE(DecodeRegistrantIds(coded + "\x11", &packed));
  EXPECT_EQ(packed, Packed(kId1) + Packed(kId2));

  v1::ConsularAlert torn;
  torn.set_registrant_ids_coded(coded + std::string("\x02\x01", 2));
  EXPECT_EQ(AlertRegistrantIdCount(torn), 2u);
  EXPECT_EQ(AlertRegistrantIds(torn), (std::vector<std::string>{kId1, kId2}));
  std::string json;
  AppendAlertRegistrantIdsJson(torn, &json);
  EXPECT_EQ(json, "[\"" + std::string(kId1) + "\",\"" + kId2 + "\"]");
}

TEST(RegistrantIdTest, TheJsonOfCodedOrPackedIdsIsTheJsonOfTheSameIdsAsStrings) {
  v1::ConsularAlert packed;
  v1::ConsularAlert old;
  packed.set_alert_id("usgs:x/PHL/JPN");
  old.set_alert_id("usgs:x/PHL/JPN");
  for (int i = 0; i < 300; ++i) {
    std::string hex = FormatRegistrantId(PackedRegistrantId{static_cast<uint8_t>(i), 0xab, static_cast<uint8_t>(i * 7)});
    packed.mutable_registrant_ids_packed()->append(Packed(hex));
    old.add_registrant_ids(hex);
  }
  v1::ConsularAlert coded = packed;
  ASSERT_TRUE(CodeAlertRegistrantIds(&coded));
  ASSERT_FALSE(coded.registrant_ids_coded().empty());
  const std::string text = AlertToJson(packed);
  EXPECT_EQ(text, AlertToJson(old));
  EXPECT_EQ(text, AlertToJson(coded));
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
