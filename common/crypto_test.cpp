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

}  // namespace
}  // namespace amparo
