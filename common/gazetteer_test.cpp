#include "common/gazetteer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iostream>

#include "common/geo.h"
#include "common/testing.h"

namespace amparo {
namespace {

// The bundled file is loaded once for the suite (it is immutable and shared).
class BundledGazetteerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto start = std::chrono::steady_clock::now();
    auto loaded = Gazetteer::Load(Gazetteer::DefaultPath());
    auto took = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    gazetteer_ = *loaded;
    std::cout << "[ measure  ] gazetteer: loaded " << gazetteer_->size() << " places in " << took << " ms\n";
  }
  static void TearDownTestSuite() { gazetteer_.reset(); }
  static std::shared_ptr<const Gazetteer> gazetteer_;
};
std::shared_ptr<const Gazetteer> BundledGazetteerTest::gazetteer_;

TEST_F(BundledGazetteerTest, HoldsAllTheCities) {
  EXPECT_GT(gazetteer_->size(), 130'000u);
  EXPECT_LT(gazetteer_->size(), 140'000u);
}

TEST_F(BundledGazetteerTest, ResolvesCebuCity) {
  auto p = gazetteer_->Resolve("Cebu City", "PHL");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->name, "Cebu City");
  EXPECT_EQ(p->country, "PHL");
  EXPECT_EQ(p->admin1, "PH.07");
  EXPECT_NEAR(p->lat, 10.3167, 0.01);
  EXPECT_NEAR(p->lon, 123.8907, 0.01);
  EXPECT_GT(p->population, 500'000);
}

TEST_F(BundledGazetteerTest, ResolvesNagoInOkinawa) {
  auto p = gazetteer_->Resolve("Nago", "JPN");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_NEAR(p->lat, 26.59, 0.05);
  EXPECT_NEAR(p->lon, 127.98, 0.05);
  EXPECT_EQ(p->admin1, "JP.47");
}

TEST_F(BundledGazetteerTest, ResolvesTingriThroughItsEnglishName) {
  // GeoNames records the seat of Tingri County as "Xêgar"; the build adds
  // the English name and the diacritic-free spelling as alternates.
  auto tingri = gazetteer_->Resolve("Tingri", "CHN");
  ASSERT_TRUE(tingri.ok()) << tingri.status().ToString();
  EXPECT_EQ(tingri->name, "Xêgar");
  EXPECT_LT(geo::DistanceKm({tingri->lat, tingri->lon}, {28.64, 87.36}), 40);
  auto ascii = gazetteer_->Resolve("xegar", "CHN");
  ASSERT_TRUE(ascii.ok());
  EXPECT_EQ(ascii->name, "Xêgar");
  EXPECT_EQ(gazetteer_->Resolve("Shigatse", "CHN")->name, "Rikaze");
}

TEST_F(BundledGazetteerTest, IsCaseInsensitive) {
  auto p = gazetteer_->Resolve("cEBU cITY", "PHL");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->name, "Cebu City");
}

TEST_F(BundledGazetteerTest, MostPopulousOfTheSameNameWins) {
  // Many US places are called Springfield; Missouri's (about 167k) is the largest.
  auto p = gazetteer_->Resolve("Springfield", "USA");
  ASSERT_TRUE(p.ok());
  for (const Place& other : gazetteer_->InCountry("USA")) {
    if (other.name == "Springfield") {
      EXPECT_LE(other.population, p->population);
    }
  }
  EXPECT_EQ(p->admin1, "US.MO");
}

TEST_F(BundledGazetteerTest, UnknownPlaceIsNotFoundWithItsName) {
  auto p = gazetteer_->Resolve("Atlantis Under The Sea", "PHL");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kNotFound);
  EXPECT_NE(p.status().message().find("Atlantis Under The Sea"), std::string::npos);
  EXPECT_NE(p.status().message().find("PHL"), std::string::npos);
}

TEST_F(BundledGazetteerTest, PlaceInAnotherCountryIsNotFound) {
  auto p = gazetteer_->Resolve("Cebu City", "JPN");
  EXPECT_EQ(p.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(gazetteer_->Resolve("Cebu City", "").status().code(), StatusCode::kNotFound);
}

TEST_F(BundledGazetteerTest, InCountryIsMostPopulousFirst) {
  auto nepal = gazetteer_->InCountry("NPL");
  ASSERT_GT(nepal.size(), 20u);
  EXPECT_EQ(nepal[0].name, "Kathmandu");
  for (size_t i = 1; i < nepal.size(); ++i) {
    EXPECT_EQ(nepal[i].country, "NPL");
    EXPECT_LE(nepal[i].population, nepal[i - 1].population);
  }
  EXPECT_TRUE(gazetteer_->InCountry("XYZ").empty());
}

std::filesystem::path Write(const testing::TempDir& dir, const std::string& text) {
  auto path = dir / "places.tsv";
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(GazetteerFileTest, SortsAnUnsortedFileAndIndexesAlternates) {
  testing::TempDir dir;
  auto g = Gazetteer::Load(Write(dir,
                                 "Small Town\t\tAAA\tAA.01\t1.5\t2.5\t1000\n"
                                 "Zürich\tZurich|Zuerich\tCHE\tCH.ZH\t47.36667\t8.55\t341730\r\n"
                                 "\n"
                                 "Big Town\tLarge Town\tAAA\t\t-1\t-2\t50000\n"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->size(), 3u);
  auto aaa = (*g)->InCountry("AAA");
  ASSERT_EQ(aaa.size(), 2u);
  EXPECT_EQ(aaa[0].name, "Big Town");
  EXPECT_EQ(aaa[0].admin1, "");
  EXPECT_EQ((*g)->Resolve("large town", "AAA")->name, "Big Town");
  EXPECT_EQ((*g)->Resolve("ZUERICH", "CHE")->name, "Zürich");
  EXPECT_EQ((*g)->Resolve("Zürich", "CHE")->population, 341730);
}

TEST(GazetteerFileTest, MalformedRowIsNamedByFileAndLine) {
  testing::TempDir dir;
  auto path = Write(dir,
                    "Good\t\tAAA\t\t1\t2\t3\n"
                    "Bad\t\tAAA\t\tnorth\t2\t3\n");
  auto g = Gazetteer::Load(path);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find(path.string() + ":2:"), std::string::npos) << g.status().ToString();
  EXPECT_NE(g.status().message().find("lat"), std::string::npos);

  g = Gazetteer::Load(Write(dir, "Good\t\tAAA\t\t1\t2\t3\nShort\tAAA\t1\t2\t3\n"));
  EXPECT_NE(g.status().message().find(":2: expected 7 tab-separated columns, found 5"), std::string::npos)
      << g.status().ToString();
  g = Gazetteer::Load(Write(dir, "Out\t\tAAA\t\t1\t200\t3\n"));
  EXPECT_NE(g.status().message().find(":1: lon"), std::string::npos) << g.status().ToString();
  g = Gazetteer::Load(Write(dir, "Neg\t\tAAA\t\t1\t2\t-3\n"));
  EXPECT_NE(g.status().message().find(":1: population"), std::string::npos) << g.status().ToString();
  g = Gazetteer::Load(Write(dir, "Iso2\t\tAA\t\t1\t2\t3\n"));
  EXPECT_NE(g.status().message().find(":1: country"), std::string::npos) << g.status().ToString();
}

TEST(GazetteerFileTest, MissingFileIsNotFoundWithItsPath) {
  testing::TempDir dir;
  auto g = Gazetteer::Load(dir / "nope.tsv");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kNotFound);
  EXPECT_NE(g.status().message().find("nope.tsv"), std::string::npos);
}

}  // namespace
}  // namespace amparo
