#include "services/ingest/feed_detect.h"

#include <boost/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include "services/ingest/acled_parser.h"
#include "services/ingest/cap_parser.h"
#include "services/ingest/gdacs_api.h"
#include "services/ingest/gdacs_rss.h"
#include "services/ingest/reliefweb_parser.h"
#include "services/ingest/usgs_parser.h"
#include "services/ingest/xml_safety.h"
#include "services/ingest/xmldsig.h"

namespace amparo::ingest {
namespace {

namespace json = boost::json;

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";
constexpr std::string_view kDoubleEncodedBom = "\xC3\xAF\xC2\xBB\xC2\xBF";

// The bytes after any BOM and leading whitespace.
std::string_view Significant(std::string_view bytes) {
  if (bytes.substr(0, kDoubleEncodedBom.size()) == kDoubleEncodedBom) bytes.remove_prefix(kDoubleEncodedBom.size());
  if (bytes.substr(0, kUtf8Bom.size()) == kUtf8Bom) bytes.remove_prefix(kUtf8Bom.size());
  size_t i = 0;
  while (i < bytes.size() && (bytes[i] == ' ' || bytes[i] == '\t' || bytes[i] == '\r' || bytes[i] == '\n')) ++i;
  return bytes.substr(i);
}

bool LooksLikeReliefWeb(const json::value& value) {
  const json::object* root = value.if_object();
  if (root == nullptr) return false;
  const json::value* data = root->if_contains("data");
  if (data == nullptr || !data->is_array()) return false;
  if (data->get_array().empty()) return root->contains("totalCount");
  const json::object* first = data->get_array()[0].if_object();
  return first && first->contains("fields");
}

Result<ParsedFeed> ParseXml(std::string_view bytes, const FeedContext& context) {
  std::vector<ParseWarning> warnings;
  auto doc = ParseXmlSafely(bytes, context.xml_limits, &warnings);
  if (!doc.ok()) return doc.status();
  Result<ParsedFeed> parsed = InvalidArgument("unparsed", "format");
  // A signed message must verify before it is parsed (xmldsig.h), against the
  // configured trust store (ingest.trust_store, ingest.require_trusted_signers).
  AMPARO_RETURN_IF_ERROR(VerifyCapSignatureIfPresent(
      *doc, context.trust_store, {.require_trusted_signers = context.require_trusted_signers}, &warnings));
  if (LooksLikeCapDocument(*doc)) {
    parsed = ParseCapDocument(*doc, context);
  } else if (LooksLikeGdacsRss(*doc)) {
    parsed = ParseGdacsRss(*doc, context);
  } else {
    parsed = ParseCapDocument(*doc, context);  // names what is missing
  }
  if (parsed.ok()) parsed->warnings.insert(parsed->warnings.begin(), warnings.begin(), warnings.end());
  return parsed;
}

Result<ParsedFeed> ParseJson(std::string_view bytes, const FeedContext& context) {
  // One parse serves detection and the USGS parser. The tree lives in one
  // arena freed at once (thousands of small nodes per feed). The default
  // depth (32, the USGS parser's) is tried first: a deeper document is read
  // again at the detection's 64 levels and goes to the USGS parser as text,
  // which reports it as too deep exactly as before.
  json::monotonic_resource arena;
  boost::system::error_code ec;
  json::value value = json::parse(bytes, ec, &arena);
  bool usgs_depth = true;
  if (ec == json::error::too_deep) {
    usgs_depth = false;
    json::parse_options options;
    options.max_depth = 64;
    value = json::parse(bytes, ec, &arena, options);
  }
  if (!ec) {
    if (LooksLikeGdacsApi(value)) return ParseGdacsApi(value, context);
    // DISPATCH POINT (ReliefWeb helper): replace the next line with the call
    // to the ReliefWeb parser converted to ParsedFeed (format "reliefweb").
    if (LooksLikeReliefWeb(value)) return ParseReliefWebFeed(bytes, context);
  }
  // USGS last: its errors ("JSON syntax error at ...", "type: must be
  // FeatureCollection or Feature") are the clearest for any other JSON.
  UsgsParseOptions usgs;
  usgs.status = context.exercise ? v1::EVENT_STATUS_EXERCISE : v1::EVENT_STATUS_ACTUAL;
  usgs.received_ms = context.received_ms;
  auto parsed = !ec && usgs_depth ? ParseUsgsGeoJsonValue(value, usgs) : ParseUsgsGeoJson(bytes, usgs);
  if (parsed.ok()) parsed->format = "usgs-geojson";
  return parsed;
}

}  // namespace

Result<ParsedFeed> ParseFeedBytes(std::string_view bytes, const FeedContext& context) {
  const std::string_view start = Significant(bytes);
  if (start.empty()) return InvalidArgument("empty file", "format");
  if (start[0] == '<') return ParseXml(bytes, context);
  if (start[0] == '{' || start[0] == '[') return ParseJson(start, context);
  const std::string_view first_line = start.substr(0, start.find('\n'));
  if (first_line.find("event_id_cnty") != std::string_view::npos) {
    // DISPATCH POINT (ACLED helper): replace with the ACLED CSV parser
    // converted to ParsedFeed (format "acled-csv").
    return ParseAcledFeed(start, context);
  }
  std::string shown(first_line.substr(0, 40));
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return InvalidArgument("unrecognised format: not XML, JSON or ACLED CSV (starts with \"" + shown + "\")",
                         "format");
}

Result<ParsedFeed> ParseFeedFile(const std::filesystem::path& file, int64_t max_file_bytes,
                                 const FeedContext& context) {
  auto bytes = ReadBoundedFile(file, max_file_bytes);
  if (!bytes.ok()) return bytes.status();
  return ParseFeedBytes(*bytes, context);
}

std::optional<std::string> FeedRejection(const Result<ParsedFeed>& parsed) {
  if (!parsed.ok()) {
    const Status& st = parsed.status();
    return st.field().empty() ? st.message() : st.field() + ": " + st.message();
  }
  if (parsed->feature_count > 0 && parsed->events.empty()) {
    return parsed->rejections.empty() ? std::string("no usable entry")
                                      : "no usable entry: " + parsed->rejections.front().ToString();
  }
  return std::nullopt;
}

}  // namespace amparo::ingest
