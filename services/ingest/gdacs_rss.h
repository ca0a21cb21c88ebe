// GDACS RSS / GeoRSS feed (https://www.gdacs.org/xml/rss.xml) -> CrisisEvent.
//
// One event per <item> carrying gdacs: fields (namespace http://www.gdacs.org):
//   source "gdacs", source_id "<eventtype><eventid>" ("TC1000643"), event_id
//   "gdacs:<source_id>" (the same ids as GDACS CAP and the GDACS API, so the
//   formats dedupe against each other); each episode is a revision:
//   revision = gdacs:datemodified, else pubDate (unix ms); alias
//   "<source_id>-<episodeid>". hazard from gdacs:eventtype; metrics.gdacs_alert
//   = gdacs:alertlevel (lower case) and severity from it (Red SEVERE, Orange
//   MODERATE, Green MINOR); magnitude (unit "M") and depth ("Depth:28.6km"),
//   or max wind (unit "km/h") from gdacs:severity; place = gdacs:country;
//   onset = gdacs:fromdate; origin = georss:point or geo:Point; areas:
//   georss:polygon ("lat lon lat lon ...") as given, else the gdacs:bbox
//   ("lonmin lonmax latmin latmax") as a rectangle (footprint_model
//   "gdacs-bbox", geocode ISO3 = gdacs:iso3; a bbox that crosses the
//   antimeridian is dropped with warning "bbox-crosses-antimeridian").
//   The population figure has no CrisisEvent field yet; it stays in the text.
// An item without eventtype/eventid, or without any point or polygon (a bbox
// alone is too coarse to place people), is a FeatureRejection.
// Pure; thread-safe for distinct documents.
#pragma once

#include "common/status.h"
#include "services/ingest/feed_types.h"
#include "services/ingest/xml_safety.h"

namespace amparo::ingest {

inline constexpr std::string_view kGdacsNamespace = "http://www.gdacs.org";

// True when the document is an RSS feed whose items carry gdacs: fields.
bool LooksLikeGdacsRss(const XmlDocument& doc);

// Errors: INVALID_ARGUMENT field "rss" when the root is not <rss><channel>.
Result<ParsedFeed> ParseGdacsRss(const XmlDocument& doc, const FeedContext& context);

}  // namespace amparo::ingest
