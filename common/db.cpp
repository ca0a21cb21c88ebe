#include "common/db.h"

#include <sqlite3.h>

#include <map>
#include <string>
#include <vector>


namespace amparo {
namespace {

Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) return {StatusCode::kUnavailable, msg};
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) return {StatusCode::kDataLoss, msg};
  if (primary == SQLITE_CONSTRAINT) return {StatusCode::kAlreadyExists, msg};
  return {StatusCode::kInternal, msg};
}

}  // namespace

// Idle compiled statements of one connection, by SQL text. Single-threaded,
// like the connection. Bounded: past kMaxIdle statements are finalized.
class StatementCache {
 public:
  static constexpr size_t kMaxIdle = 256;

  sqlite3_stmt* Take(std::string_view sql) {
    auto it = idle_.find(sql);
    if (it == idle_.end() || it->second.empty()) return nullptr;
    sqlite3_stmt* stmt = it->second.back();
    it->second.pop_back();
    --count_;
    return stmt;
  }

  void Put(sqlite3_stmt* stmt) {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    const char* sql = sqlite3_sql(stmt);
    if (closed_ || count_ >= kMaxIdle || sql == nullptr) {
      sqlite3_finalize(stmt);
      return;
    }
    idle_[sql].push_back(stmt);
    ++count_;
  }

  // The connection closes: finalize everything idle, and whatever comes back later.
  void Close() {
    closed_ = true;
    for (auto& [sql, stmts] : idle_) {
      for (sqlite3_stmt* stmt : stmts) sqlite3_finalize(stmt);
    }
    idle_.clear();
    count_ = 0;
  }

 private:
  std::map<std::string, std::vector<sqlite3_stmt*>, std::less<>> idle_;
  size_t count_ = 0;
  bool closed_ = false;
};

Db::Db(sqlite3* db, std::filesystem::path path)
    : db_(db), path_(std::move(path)), cache_(std::make_shared<StatementCache>()) {}


void Db::Close() {
  if (cache_) cache_->Close();
  if (db_) sqlite3_close_v2(db_);
  db_ = nullptr;
}

namespace {

// SQLite counts every allocation behind a global mutex by default
// (SQLITE_CONFIG_MEMSTATUS) for sqlite3_memory_used(), which nothing here
// reads; the count cost a lock per allocation (several per inserted row).
// Must run before the library initialises, so before the first open; once
// it has (some other caller opened first), sqlite3_config refuses harmlessly.
void ConfigureSqliteOnce() {
  static const int rc = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)rc;
}

}  // namespace

DbOptions DaemonDbOptions() {
  DbOptions options;
  options.temp_store_memory = true;
  return options;
}

Result<Db> Db::Open(const std::filesystem::path& path, const DbOptions& options) {
  ConfigureSqliteOnce();
  sqlite3* raw = nullptr;
  int flags = options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status st = SqliteError(raw, rc, "opening " + path.string());
    sqlite3_close(raw);
    return st;
  }
  Db db(raw, path);
  db.full_sync_ = options.full_sync && !options.read_only;
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  if (!options.read_only) {
    AMPARO_RETURN_IF_ERROR(db.Exec("PRAGMA journal_mode=WAL"));
    AMPARO_RETURN_IF_ERROR(
        db.Exec(options.full_sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"));
  }
  AMPARO_RETURN_IF_ERROR(db.Exec("PRAGMA foreign_keys=ON"));
  AMPARO_RETURN_IF_ERROR(db.Exec("PRAGMA cache_size=-" + std::to_string(options.cache_kib)));
  if (options.temp_store_memory) AMPARO_RETURN_IF_ERROR(db.Exec("PRAGMA temp_store=MEMORY"));
  return db;
}

Db::Db(Db&& other) noexcept
    : db_(other.db_),
      path_(std::move(other.path_)),
      cache_(std::move(other.cache_)),
      full_sync_(other.full_sync_) {
  other.db_ = nullptr;
}

Db& Db::operator=(Db&& other) noexcept {
  if (this != &other) {
    Close();
    db_ = other.db_;
    path_ = std::move(other.path_);
    cache_ = std::move(other.cache_);
    full_sync_ = other.full_sync_;
    other.db_ = nullptr;
  }
  return *this;
}

Db::~Db() { Close(); }

UnsyncedCommits::UnsyncedCommits(Db& db) : db_(db) {
  if (db_.full_sync()) (void)db_.Run("PRAGMA synchronous=NORMAL");
}

UnsyncedCommits::~UnsyncedCommits() {
  if (db_.full_sync()) (void)db_.Run("PRAGMA synchronous=FULL");
}

Status Db::Exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return SqliteError(nullptr, rc, msg);
  }
  return Status::Ok();
}

Status Db::Run(std::string_view sql) {
  auto stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  return stmt->Run();
}

Result<Statement> Db::Prepare(std::string_view sql) {
  if (sqlite3_stmt* cached = cache_->Take(sql)) return Statement(cached, db_, cache_);
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                              &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_, rc, "preparing statement");
  return Statement(stmt, db_, cache_);
}

Status Db::Migrate(const std::vector<std::string>& migrations) {
  auto version_stmt = Prepare("PRAGMA user_version");
  if (!version_stmt.ok()) return version_stmt.status();
  auto row = version_stmt->Step();
  if (!row.ok()) return row.status();
  int64_t version = version_stmt->ColumnInt(0);
  version_stmt->Reset();
  if (version > static_cast<int64_t>(migrations.size())) {
    return {StatusCode::kFailedPrecondition,
            path_.string() + " has schema version " + std::to_string(version) +
                ", newer than this binary knows (" + std::to_string(migrations.size()) + ")"};
  }
  for (size_t i = static_cast<size_t>(version); i < migrations.size(); ++i) {
    AMPARO_RETURN_IF_ERROR(Begin());
    Status st = Exec(migrations[i]);
    if (st.ok()) st = Exec("PRAGMA user_version=" + std::to_string(i + 1));
    if (!st.ok()) {
      Rollback();
      return {st.code(), "migration " + std::to_string(i + 1) + ": " + st.message()};
    }
    AMPARO_RETURN_IF_ERROR(Commit());
  }
  return Status::Ok();
}

Result<bool> Db::SetPageSizeIfEmpty(int bytes) {
  if (bytes < 512 || bytes > 65536 || (bytes & (bytes - 1)) != 0) {
    return InvalidArgument("must be a power of two from 512 to 65536", "page_size");
  }
  auto read = [this](const char* sql) -> Result<int64_t> {
    auto q = Prepare(sql);
    if (!q.ok()) return q.status();
    auto row = q->Step();
    if (!row.ok()) return row.status();
    return *row ? q->ColumnInt(0) : 0;
  };
  auto tables = read("SELECT count(*) FROM sqlite_schema");
  if (!tables.ok()) return tables.status();
  auto current = read("PRAGMA page_size");
  if (!current.ok()) return current.status();
  if (*tables > 0 || *current == bytes) return false;
  // A WAL database's page size is fixed: leave WAL, set the size, rebuild
  // the (empty) file with it, and go back.
  auto mode = Prepare("PRAGMA journal_mode");
  if (!mode.ok()) return mode.status();
  auto row = mode->Step();
  if (!row.ok()) return row.status();
  const std::string journal = *row ? mode->ColumnText(0) : "delete";
  mode->Reset();
  AMPARO_RETURN_IF_ERROR(Exec("PRAGMA journal_mode=DELETE; PRAGMA page_size=" + std::to_string(bytes) +
                              "; VACUUM; PRAGMA journal_mode=" + journal));
  auto now = read("PRAGMA page_size");
  if (!now.ok()) return now.status();
  if (*now != bytes) {
    return Status(StatusCode::kFailedPrecondition,
                  path_.string() + ": the page size stayed " + std::to_string(*now) + " (another connection open?)");
  }
  return true;
}

Status Db::Begin() { return Run("BEGIN IMMEDIATE"); }
Status Db::Commit() { return Run("COMMIT"); }
void Db::Rollback() {
  if (!sqlite3_get_autocommit(db_)) (void)Exec("ROLLBACK");
}
int64_t Db::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }
int Db::Changes() const { return sqlite3_changes(db_); }

Result<Transaction> Transaction::Begin(Db& db) {
  AMPARO_RETURN_IF_ERROR(db.Begin());
  return Transaction(&db);
}

Transaction::~Transaction() {
  if (db_) db_->Rollback();
}

Status Transaction::Commit() {
  Status st = db_->Commit();
  if (st.ok()) db_ = nullptr;
  return st;
}

Statement::Statement(Statement&& other) noexcept
    : stmt_(other.stmt_), db_(other.db_), cache_(std::move(other.cache_)) {
  other.stmt_ = nullptr;
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    Release();
    stmt_ = other.stmt_;
    db_ = other.db_;
    cache_ = std::move(other.cache_);
    other.stmt_ = nullptr;
  }
  return *this;
}

void Statement::Release() {
  if (stmt_ == nullptr) return;
  if (cache_) {
    cache_->Put(stmt_);
  } else {
    sqlite3_finalize(stmt_);
  }
  stmt_ = nullptr;
}

Statement::~Statement() { Release(); }

Statement& Statement::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}
Statement& Statement::Bind(int index, double value) {
  sqlite3_bind_double(stmt_, index, value);
  return *this;
}
Statement& Statement::Bind(int index, std::string_view text) {
  sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::BindBlob(int index, std::string_view bytes) {
  sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::BindRef(int index, std::string_view text) {
  sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
  return *this;
}
Statement& Statement::BindBlobRef(int index, std::string_view bytes) {
  sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
  return *this;
}
Statement& Statement::BindNull(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

Result<bool> Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Status st = SqliteError(db_, rc, "executing statement");
  sqlite3_reset(stmt_);
  return st;
}

Status Statement::Run() {
  auto r = Step();
  Reset();
  return r.ok() ? Status::Ok() : r.status();
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t Statement::ColumnInt(int col) const { return sqlite3_column_int64(stmt_, col); }
double Statement::ColumnDouble(int col) const { return sqlite3_column_double(stmt_, col); }
std::string Statement::ColumnText(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col)) : std::string();
}
std::string Statement::ColumnBlob(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  return p ? std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, col)) : std::string();
}
bool Statement::ColumnIsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

}  // namespace amparo
