// CAP 1.0 / 1.1 / 1.2 (OASIS Common Alerting Protocol) -> CrisisEvent.
//
// Accepts, in a document read by ParseXmlSafely():
//   * one <alert> as the root element                      format "cap"
//   * an Atom <feed> whose entries carry an <alert> (in <content> or as a
//     direct child)                                         format "cap-atom"
//   * an RSS 2.0 <rss> whose items carry an <alert> (the GDACS CAP feed)
//                                                           format "cap-rss"
// A feed entry without an embedded alert is a FeatureRejection (link-only
// index feeds are not fetched: configure the CAP URLs themselves).
//
// Validation, per alert: the OASIS schema of its namespace (cap_schema.h),
// then specification rules the XSDs do not express (identifier and sender
// without spaces, commas, '<' or '&'; references as "sender,identifier,sent"
// triples; polygons of >= 4 "lat,lon" pairs, closed, in range; circles
// "lat,lon radius_km"; msgType Ack/Error carry no event).
//   strict:  any failure rejects the alert.
//   lenient: these known real-world deviations are accepted with a warning of
//            that name, everything else still rejects:
//     "polygon-after-geocode"  <polygon>/<circle> after <geocode> in an <area>
//     "value-valuename-order"  <value> before <valueName> (geocode, parameter, eventCode)
//     "signature-in-cap11"     an XML-DSig <Signature> in CAP 1.0/1.1 (only 1.2 allows it)
//     "empty-references"       <references/> with no content (ignored)
//     "polygon-not-closed"     last vertex != first (the ring is closed for them)
//   Lenient schema checking validates a normalised copy (elements reordered,
//   signature removed) and accepts only when that copy is schema-valid.
//
// Mapping (one CrisisEvent per alert; these are the documented id rules, shared
// with gdacs_rss.h and gdacs_api.h):
//   source "cap", source_id "<sender>:<identifier>", event_id "cap:<source_id>";
//   an Update/Cancel with references gets the event_id of the earliest
//   referenced message, and every referenced message's id as an alias, so all
//   revisions of one CAP incident share an event_id. revision = sent (unix ms).
//   GDACS CAP (parameters eventid, eventtype, alertlevel): source "gdacs",
//   source_id "<eventtype><eventid>" (e.g. "EQ1279931"), event_id
//   "gdacs:<source_id>"; each episode is a new revision: revision =
//   datemodified parameter (else sent), alias "<eventtype><eventid>-<episodeid>"
//   and the CAP identifier; metrics.gdacs_alert = alertlevel (lower case) and
//   severity from the alert level (Red SEVERE, Orange MODERATE, Green MINOR),
//   never from CAP <severity>.
//   Every <info> gives one LocalizedText (first per language); areas from all
//   infos, deduplicated by geometry; severity/urgency/certainty/event/web from
//   the first info; onset = onset, else effective, else sent; expires = the
//   latest expires; status (Exercise/Test/...), scope, msgType carried.
//
// Pure functions over the document; thread-safe for distinct documents.
#pragma once

#include <string_view>

#include "common/status.h"
#include "services/ingest/feed_types.h"
#include "services/ingest/xml_safety.h"

namespace amparo::ingest {

inline constexpr std::string_view kCapSource = "cap";
inline constexpr std::string_view kGdacsSource = "gdacs";

// True when the root (or, for feeds, the first entry) holds a CAP alert: a
// cheap check for the format detector.
bool LooksLikeCapDocument(const XmlDocument& doc);

// Parses every alert of the document. Errors (whole document refused):
//   INVALID_ARGUMENT "not a CAP alert, Atom feed or RSS feed (root element <schema>)"
//   for a single alert: the reason it was rejected, field naming the element,
//     e.g. field "alert", "CAP 1.2 schema: line 9: Element 'info': This element is not expected..."
//   for an RSS channel missing <title>/<link>/<description>: field "rss.channel".
// Entries of a feed that fail are FeatureRejections; the rest are parsed.
Result<ParsedFeed> ParseCapDocument(const XmlDocument& doc, const FeedContext& context);

}  // namespace amparo::ingest
