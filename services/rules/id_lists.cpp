#include "services/rules/id_lists.h"

#include "common/crypto.h"
#include "common/registrant_id.h"

namespace amparo::rules {
namespace {

struct StoredIdList {
  std::string ids;
  bool coded = false;  // front-coded; false: packed (rows written before)
};

Result<StoredIdList> LoadStored(Db& db, std::string_view digest) {
  auto q = db.Prepare("SELECT ids, coded FROM id_lists WHERE digest = ?");
  if (!q.ok()) return q.status();
  q->BindBlob(1, digest);
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status(StatusCode::kDataLoss, "id_lists has no list " + HexEncode(digest));
  return StoredIdList{q->ColumnBlob(0), q->ColumnInt(1) != 0};
}

}  // namespace

Result<std::string> StoreIdList(Db& db, std::string_view coded) {
  if (coded.empty()) return std::string();
  std::string digest = Sha256(coded);
  auto q = db.Prepare("INSERT OR IGNORE INTO id_lists (digest, ids, coded) VALUES (?, ?, 1)");
  if (!q.ok()) return q.status();
  q->BindBlob(1, digest).BindBlobRef(2, coded);
  AMPARO_RETURN_IF_ERROR(q->Run());
  return digest;
}

Result<std::string> LoadPackedIdList(Db& db, std::string_view digest) {
  auto stored = LoadStored(db, digest);
  if (!stored.ok()) return stored.status();
  if (!stored->coded) return std::move(stored->ids);
  std::string packed;
  if (!DecodeRegistrantIds(stored->ids, &packed)) {
    return Status(StatusCode::kDataLoss, "id_lists list " + HexEncode(digest) + " is not front-coded ids");
  }
  return packed;
}

bool ParseIdListDigest(std::string_view hex, std::string* digest) {
  // Two 16-byte halves, each in the registrant id form (32 lowercase hex).
  if (hex.size() != 64) return false;
  PackedRegistrantId half{};
  digest->clear();
  for (size_t at : {size_t{0}, size_t{32}}) {
    if (!ParseRegistrantId(hex.substr(at, 32), &half)) return false;
    digest->append(reinterpret_cast<const char*>(half.data()), half.size());
  }
  return true;
}

Result<std::string> StoreIds(Db& db, v1::ConsularAlert& alert, std::string* without_ids) {
  // Ids attached from a list stored before the coded form are coded now.
  CodeAlertRegistrantIds(&alert);
  std::string ids;
  ids.swap(*alert.mutable_registrant_ids_coded());
  *without_ids = alert.SerializeAsString();
  ids.swap(*alert.mutable_registrant_ids_coded());
  return StoreIdList(db, alert.registrant_ids_coded());
}

Status AttachIds(Db& db, std::string_view digest, v1::ConsularAlert& alert) {
  if (digest.empty()) return Status::Ok();
  auto stored = LoadStored(db, digest);
  if (!stored.ok()) {
    return Status(stored.status().code(), stored.status().message() + " for alert " + alert.alert_id());
  }
  if (stored->coded) {
    *alert.mutable_registrant_ids_coded() = std::move(stored->ids);
  } else {
    *alert.mutable_registrant_ids_packed() = std::move(stored->ids);
  }
  return Status::Ok();
}

}  // namespace amparo::rules
