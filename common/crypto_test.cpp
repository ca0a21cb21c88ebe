#include "common/crypto.h"

#include <gtest/gtest.h>

namespace amparo {
namespace {

TEST(CryptoTest, Base64RoundTripsAndMatchesRfc4648Vectors) {
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(*Base64Decode("Zm9vYg=="), "foob");
  EXPECT_EQ(*Base64Decode("Zm9vYmE="), "fooba");
}

TEST(CryptoTest, Base64RejectsNonCanonicalAndForeignCharacters) {
  // "Zh==" decodes to "f" with non-zero unused bits (RFC 4648 3.5).
  auto r = Base64Decode("Zh==");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("canonical"), std::string::npos);
  EXPECT_FALSE(Base64Decode("Zm9v!mFy").ok());
  EXPECT_FALSE(Base64Decode("Zm9").ok());
}

TEST(CryptoTest, HmacSha256MatchesRfc4231TestCase2) {
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CryptoTest, NewIdIsUnique128BitHex) {
  std::string a = NewId(), b = NewId();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
}

TEST(CryptoTest, TimeOrderedIdsStartWithTheMillisecondsAndSortByThem) {
  // 2026-11-27T00:00:00Z = 1795737600000 ms = 0x01a2 1a4d 4000 (48 bits).
  const std::string a = NewTimeOrderedId(1795737600000);
  ASSERT_EQ(a.size(), 32u);
  EXPECT_EQ(a.substr(0, 12), "01a21a4d4000");
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  const std::string same_ms = NewTimeOrderedId(1795737600000);
  EXPECT_EQ(same_ms.substr(0, 12), a.substr(0, 12));
  EXPECT_NE(same_ms, a);  // 80 random bits after the time
  std::string previous = NewTimeOrderedId(1795737600000 - 1);
  for (int64_t ms : {int64_t{1795737600000}, int64_t{1795737600001}, int64_t{1795737600256},
                     int64_t{1795737665536}, int64_t{2795737600000}}) {
    const std::string next = NewTimeOrderedId(ms);
    EXPECT_LT(previous, next) << ms;
    previous = next;
  }
  EXPECT_EQ(NewTimeOrderedId(0).substr(0, 12), "000000000000");
  EXPECT_EQ(NewTimeOrderedId(-5).substr(0, 12), "000000000000");
}

}  // namespace
}  // namespace amparo
