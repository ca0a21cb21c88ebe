#include "services/rules/id_lists.h"

#include "common/crypto.h"
#include "common/registrant_id.h"

namespace amparo::rules {

Result<std::string> StoreIdList(Db& db, std::string_view packed) {
  if (packed.empty()) return std::string();
  std::string digest = Sha256(packed);
  auto q = db.Prepare("INSERT OR IGNORE INTO id_lists (digest, ids) VALUES (?, ?)");
  if (!q.ok()) return q.status();
  q->BindBlob(1, digest).BindBlobRef(2, packed);
  AMPARO_RETURN_IF_ERROR(q->Run());
  return digest;
}

Result<std::string> LoadIdList(Db& db, std::string_view digest) {
  auto q = db.Prepare("SELECT ids FROM id_lists WHERE digest = ?");
  if (!q.ok()) return q.status();
  q->BindBlob(1, digest);
  auto row = q->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status(StatusCode::kDataLoss, "id_lists has no list " + HexEncode(digest));
  return q->ColumnBlob(0);
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
  std::string ids;
  ids.swap(*alert.mutable_registrant_ids_packed());
  *without_ids = alert.SerializeAsString();
  ids.swap(*alert.mutable_registrant_ids_packed());
  return StoreIdList(db, alert.registrant_ids_packed());
}

Status AttachIds(Db& db, std::string_view digest, v1::ConsularAlert& alert) {
  if (digest.empty()) return Status::Ok();
  auto ids = LoadIdList(db, digest);
  if (!ids.ok())
    return Status(ids.status().code(), ids.status().message() + " for alert " + alert.alert_id());
  *alert.mutable_registrant_ids_packed() = std::move(ids).value();
  return Status::Ok();
}

}  // namespace amparo::rules
