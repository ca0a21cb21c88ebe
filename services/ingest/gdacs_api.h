// GDACS JSON API (https://www.gdacs.org/gdacsapi/) -> CrisisEvent.
//
// Two documents, told apart by shape:
//   * geteventdata: one GeoJSON Feature whose properties hold eventtype,
//     eventid, episodeid, alertlevel, datemodified ...   format "gdacs-api-event"
//     -> one event, origin = the Point geometry, no area;
//   * getgeometry: a FeatureCollection of one event episode: a centroid Point
//     and Polygon/MultiPolygon features (wind buffers, affected area, forecast
//     track)                                              format "gdacs-api-geometry"
//     -> one event, origin = the centroid, one Area per polygon feature
//     (description = polygonlabel and Class, footprint_model "source");
//     LineString track segments are skipped.
// Ids and revisions as in gdacs_rss.h: event_id "gdacs:<eventtype><eventid>",
// revision = datemodified (unix ms, times without a zone are UTC), alias
// "<eventtype><eventid>-<episodeid>"; metrics.gdacs_alert = alertlevel and
// severity from it, never from any other field; magnitude/depth or max wind
// from severitydata.
// Pure; thread-safe.
#pragma once

#include <string_view>

#include "common/status.h"
#include "services/ingest/feed_types.h"

namespace boost::json {
class value;
}

namespace amparo::ingest {

// True when `json` is a GDACS API event or geometry document (properties
// with eventtype and eventid).
bool LooksLikeGdacsApi(const boost::json::value& json);

// Errors: INVALID_ARGUMENT naming the field ("properties.eventid": "must be
// an integer or string") when a required field is missing or wrong.
Result<ParsedFeed> ParseGdacsApi(const boost::json::value& json, const FeedContext& context);

}  // namespace amparo::ingest
