// Registrant id lists stored once (table id_lists of rules.db).
//
// An alert's registrant ids (front-coded, common/registrant_id.h; up to
// rules.max_ids_per_alert) are most of its bytes. The candidate an event gives an alert
// (alert_sources), the decision record and the alert's latest notification
// hold the same list: each distinct list is stored once under its SHA-256,
// and those rows hold the alert without it plus the digest. The exposure
// logged for replay (input_log) names its groups' lists the same way.
#pragma once

#include <string>
#include <string_view>

#include "amparo/v1/envelope.pb.h"
#include "common/db.h"
#include "common/status.h"

namespace amparo::rules {

// Stores `coded` (front-coded registrant ids) in id_lists unless that list
// is there already and returns its SHA-256 (32 bytes): "" for no ids
// (nothing stored). Call inside the caller's transaction. Lists stored
// before the coded form hold packed ids (id_lists.coded = 0) under the
// SHA-256 of those; both kinds are read back.
Result<std::string> StoreIdList(Db& db, std::string_view coded);

// The list stored under `digest` as packed ids (16 bytes each); kDataLoss
// when there is none or it does not decode.
Result<std::string> LoadPackedIdList(Db& db, std::string_view digest);

// A digest as the exposure log writes it (64 lowercase hex characters) back
// to its 32 bytes; false for anything else.
bool ParseIdListDigest(std::string_view hex, std::string* digest);

// Serialises `alert` without its registrant ids into *without_ids, stores
// the ids in id_lists unless that list is there already, and returns their
// digest: "" when the alert has none (then nothing is stored). On return
// `alert` holds its ids in the coded form (CodeAlertRegistrantIds), as it
// did unless they came from a list stored before that form. Call inside the
// caller's transaction.
Result<std::string> StoreIds(Db& db, v1::ConsularAlert& alert, std::string* without_ids);

// Sets `alert`'s ids to the list stored under `digest` ("" leaves the alert
// as it is): registrant_ids_coded, or registrant_ids_packed for a list
// stored before the coded form. A digest with no list is kDataLoss.
Status AttachIds(Db& db, std::string_view digest, v1::ConsularAlert& alert);

}  // namespace amparo::rules
