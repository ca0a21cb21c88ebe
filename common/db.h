// SQLite access: one Db per thread, WAL journal, a busy timeout, prepared
// statements, transactions and numbered schema migrations.
//
// Thread safety: a Db and its Statements belong to one thread. Open another
// Db on the same file for another thread (WAL allows concurrent readers and
// one writer; the busy timeout bounds how long a writer waits).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace amparo {

class Statement;
class StatementCache;  // db.cpp: idle prepared statements of one connection

struct DbOptions {
  // How long a writer waits for the lock before SQLITE_BUSY. Default 5 s.
  int busy_timeout_ms = 5000;
  // synchronous=FULL makes every commit durable across power loss (the
  // guarantee "nothing accepted is lost" needs it). Default true.
  bool full_sync = true;
  bool read_only = false;
  // SQLite's page cache per connection (PRAGMA cache_size), allocated as
  // used. SQLite's own default (2 MiB) is smaller than one batch of alerts
  // (link.batch messages in one transaction): it then spills dirty pages to
  // the WAL mid-transaction and re-reads pages through the kernel. Default
  // 64 MiB.
  int cache_kib = 64 * 1024;
  // PRAGMA temp_store=MEMORY. The link runs each message of a batch in a
  // savepoint, whose statement journal SQLite moves to a temporary file once
  // it passes 64 KiB (an alert row is up to ~35 KiB): a file created,
  // written and deleted per message, most of a daemon's kernel time in
  // bench-pipeline. In memory it is bounded by one message's pages; it plays
  // no part in crash recovery (the WAL does). Default false.
  bool temp_store_memory = false;
};

// What a daemon's own writing connection uses: the defaults, with
// temporary journals in memory. (Checkpoints stay SQLite's: inline in the
// commit that crosses 1000 WAL pages. A thread checkpointing beside the
// commits was tried and made bench-pipeline's p99 worse, 17-23 -> 38-40 ms:
// docs/PERFORMANCE.md "Pipeline".)
DbOptions DaemonDbOptions();

class Db {
 public:
  static Result<Db> Open(const std::filesystem::path& path, const DbOptions& options = {});
  Db(Db&& other) noexcept;
  Db& operator=(Db&& other) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  // Runs one or more statements without results (DDL, PRAGMA).
  Status Exec(std::string_view sql);
  // Runs one statement without results through the statement cache (what
  // runs again and again: BEGIN, COMMIT, SAVEPOINT, RELEASE), which saves
  // compiling it each time as Exec() does.
  Status Run(std::string_view sql);
  // A statement for `sql`. Compiled statements are kept per connection: a
  // Statement that goes out of scope is reset and kept (up to a bound), and
  // the next Prepare of the same text reuses it instead of compiling again
  // (the hot paths prepare the same few statements per message).
  Result<Statement> Prepare(std::string_view sql);

  // Applies `migrations[i]` for every i >= the stored user_version, each in
  // its own transaction, and records the new version. Never edit a migration
  // that has shipped: append a new one.
  Status Migrate(const std::vector<std::string>& migrations);

  // Gives a database that holds no table yet pages of `bytes` (a power of
  // two, 512-65536), before its first migration: large rows written in bulk
  // cost less in fewer, larger pages. A database with any table keeps its
  // page size (changing it rewrites the whole file). Needs no other open
  // connection to the file (it leaves WAL mode for a moment). Returns
  // whether the size changed.
  Result<bool> SetPageSizeIfEmpty(int bytes);

  Status Begin();     // BEGIN IMMEDIATE: takes the write lock now
  Status Commit();
  void Rollback();    // never fails from the caller's point of view

  // Whether commits are synchronous=FULL (DbOptions::full_sync).
  bool full_sync() const { return full_sync_; }

  int64_t LastInsertRowId() const;
  int Changes() const;
  sqlite3* raw() { return db_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  Db(sqlite3* db, std::filesystem::path path);
  void Close();
  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
  std::shared_ptr<StatementCache> cache_;
  bool full_sync_ = false;
};

// While alive, commits on `db` skip their fsync (synchronous=NORMAL): for
// work whose loss in a power cut is harmless because it is redone, e.g.
// forgetting outbox messages the peer acknowledged (were the delete lost, the
// message is sent again and the receiver drops it by its id). A crash of the
// process loses nothing (the WAL is written); the next synchronous commit
// on the connection, or a checkpoint, makes them durable too. Restores
// synchronous=FULL when the connection had it. Not across a transaction.
class UnsyncedCommits {
 public:
  explicit UnsyncedCommits(Db& db);
  ~UnsyncedCommits();
  UnsyncedCommits(const UnsyncedCommits&) = delete;
  UnsyncedCommits& operator=(const UnsyncedCommits&) = delete;

 private:
  Db& db_;
};

// RAII transaction: rolls back unless Commit() succeeded.
class Transaction {
 public:
  static Result<Transaction> Begin(Db& db);
  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();
  Status Commit();
  Db& db() { return *db_; }

 private:
  explicit Transaction(Db* db) : db_(db) {}
  Db* db_;
};

// A prepared statement. Bind with 1-based indexes; Step() returns true while
// there is a row. Reset() to run again.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, double value);
  Statement& Bind(int index, std::string_view text);
  Statement& Bind(int index, const char* text) { return Bind(index, std::string_view(text)); }
  Statement& BindBlob(int index, std::string_view bytes);
  // Without a copy (SQLITE_STATIC): the bytes must stay alive and unchanged
  // until the statement is next Run() or Reset() (both clear the bindings).
  Statement& BindRef(int index, std::string_view text);
  Statement& BindBlobRef(int index, std::string_view bytes);
  Statement& BindNull(int index);

  // True: a row is ready. False: done. Errors: returned as status.
  Result<bool> Step();
  // Runs a statement that returns no rows (INSERT/UPDATE/DELETE) and resets it.
  Status Run();
  void Reset();

  int64_t ColumnInt(int col) const;
  double ColumnDouble(int col) const;
  std::string ColumnText(int col) const;
  std::string ColumnBlob(int col) const;
  bool ColumnIsNull(int col) const;

 private:
  friend class Db;
  Statement(sqlite3_stmt* stmt, sqlite3* db, std::shared_ptr<StatementCache> cache)
      : stmt_(stmt), db_(db), cache_(std::move(cache)) {}
  void Release();  // back to the cache, or finalized
  sqlite3_stmt* stmt_ = nullptr;
  sqlite3* db_ = nullptr;
  std::shared_ptr<StatementCache> cache_;
};

}  // namespace amparo
