// Registrant id lists stored once (table id_lists of rules.db).
//
// An alert's registrant ids (16 bytes each, up to rules.max_ids_per_alert)
// are most of its bytes. The candidate an event gives an alert
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

// Stores `packed` (registrant ids, 16 bytes each) in id_lists unless that
// list is there already and returns its SHA-256 (32 bytes): "" for no ids
// (nothing stored). Call inside the caller's transaction.
Result<std::string> StoreIdList(Db& db, std::string_view packed);

// The list stored under `digest`; kDataLoss when there is none.
Result<std::string> LoadIdList(Db& db, std::string_view digest);

// A digest as the exposure log writes it (64 lowercase hex characters) back
// to its 32 bytes; false for anything else.
bool ParseIdListDigest(std::string_view hex, std::string* digest);

// Serialises `alert` without its packed registrant ids into *without_ids
// (`alert` is unchanged on return), stores the ids in id_lists unless that
// list is there already, and returns their digest: "" when the alert has
// none (then nothing is stored). Call inside the caller's transaction.
Result<std::string> StoreIds(Db& db, v1::ConsularAlert& alert, std::string* without_ids);

// Sets `alert`'s packed ids to the list stored under `digest` ("" leaves
// the alert as it is). A digest with no list is kDataLoss.
Status AttachIds(Db& db, std::string_view digest, v1::ConsularAlert& alert);

}  // namespace amparo::rules
