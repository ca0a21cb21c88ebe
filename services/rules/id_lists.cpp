#include "services/rules/id_lists.h"

#include "common/crypto.h"

namespace amparo::rules {

Result<std::string> StoreIds(Db& db, v1::ConsularAlert& alert, std::string* without_ids) {
  std::string ids;
  ids.swap(*alert.mutable_registrant_ids_packed());
  *without_ids = alert.SerializeAsString();
  ids.swap(*alert.mutable_registrant_ids_packed());
  if (alert.registrant_ids_packed().empty()) return std::string();
  std::string digest = Sha256(alert.registrant_ids_packed());
  auto q = db.Prepare("INSERT OR IGNORE INTO id_lists (digest, ids) VALUES (?, ?)");
  if (!q.ok()) return q.status();
  q->BindBlob(1, digest).BindBlobRef(2, alert.registrant_ids_packed());
  AMPARO_RETURN_IF_ERROR(q->Run());
  return digest;
}

Status AttachIds(Db& db, std::string_view digest, v1::ConsularAlert& alert) {
  if (digest.empty()) return Status::Ok();
  auto q = db.Prepare("SELECT ids FROM id_lists WHERE digest = ?");
  if (!q.ok()) return q.status();
  q->BindBlob(1, digest);
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    return Status(StatusCode::kDataLoss, "id_lists has no list " + HexEncode(digest) + " for alert " +
                                             alert.alert_id());
  }
  *alert.mutable_registrant_ids_packed() = q->ColumnBlob(0);
  return Status::Ok();
}

}  // namespace amparo::rules
