#include "services/gateway/import_export.h"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <istream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/audit.h"
#include "common/json_text.h"
#include "services/gateway/registrant_json.h"

namespace amparo::gateway {
namespace {

namespace json = boost::json;

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// The first ',' or '\n' in p[from, end), else end. Most cells are shorter
// than 16 bytes: one SSE2 compare finds their end.
size_t FindCommaOrNewline(const char* p, size_t from, size_t end) {
#if defined(__SSE2__)
  const __m128i comma = _mm_set1_epi8(','), newline = _mm_set1_epi8('\n');
  for (; from + 16 <= end; from += 16) {
    const __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + from));
    const int hits =
        _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(chunk, comma), _mm_cmpeq_epi8(chunk, newline)));
    if (hits != 0) return from + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(hits)));
  }
#endif
  while (from < end && p[from] != ',' && p[from] != '\n') ++from;
  return from;
}

// A bounded RFC 4180 record reader over an istream. Cells are views into
// its own buffer: an unquoted cell is never copied, a quoted one is
// unescaped in place (it only shrinks), so a record costs no allocation
// once the buffer and the cell vector have grown to fit.
class CsvReader {
 public:
  CsvReader(std::istream& in, size_t max_record_bytes)
      : in_(in),
        max_record_bytes_(max_record_bytes),
        limit_(std::max(max_record_bytes, max_record_bytes + 1)),  // + 1 unless that wraps
        capacity_(std::min(kInitialBuffer, limit_)),
        buffer_(std::make_unique<char[]>(capacity_)) {}

  // Reads the next record; its cells are then cells(). Returns false at
  // end of input. kInvalidArgument for a record longer than
  // max_record_bytes (its bytes including the line end) or a quote left
  // open at the end of the input (the rest of that record is skipped),
  // kUnavailable when the stream fails.
  Result<bool> Next() {
    cells_.clear();
    spans_.clear();
    too_long_ = false;
    dropped_ = 0;
    Cursor cur;
    if (begin_ == end_ && !More(&cur)) {
      if (in_.bad()) return Unavailable("reading the input failed");
      return false;
    }
    bool last_cell = false;
    while (!last_cell) {
      cur.start = cur.w = cur.k;
      if (cur.k == Available() && !More(&cur)) {
        last_cell = true;  // "a," at the end of the input: an empty last cell
      } else if (Data()[cur.k] == '"') {
        // A quote opens a quoted part only as a cell's first byte; "" in it is a quote.
        ++cur.k;
        while (true) {
          char* p = Data();
          const void* quote = std::memchr(p + cur.k, '"', Available() - cur.k);
          Keep(&cur,
               quote == nullptr ? Available() : static_cast<size_t>(static_cast<const char*>(quote) - p));
          if (quote == nullptr) {
            if (More(&cur)) continue;
            begin_ = end_;
            if (in_.bad()) return Unavailable("reading the input failed");
            return InvalidArgument("unterminated quoted field", "");
          }
          ++cur.k;
          if (cur.k == Available() && !More(&cur)) {
            last_cell = true;
            break;
          }
          if (Data()[cur.k] != '"') break;
          Data()[cur.w++] = '"';
          ++cur.k;
        }
      }
      if (!last_cell) last_cell = ScanUnquoted(&cur);
      if (!too_long_) spans_.push_back({cur.start, cur.w - cur.start});
    }
    const size_t record_bytes = dropped_ + cur.k;
    const char* base = Data();
    begin_ += cur.k;
    if (in_.bad()) return Unavailable("reading the input failed");
    if (too_long_ || record_bytes > max_record_bytes_) {
      return InvalidArgument("the record is longer than " + std::to_string(max_record_bytes_) + " bytes", "");
    }
    for (const auto& [offset, length] : spans_) cells_.emplace_back(base + offset, length);
    return true;
  }

  // The cells of the record Next() read; valid until the next call.
  const std::vector<std::string_view>& cells() const { return cells_; }

  // Next(), with the cells copied into `fields` (for the header).
  Result<bool> Next(std::vector<std::string>* fields) {
    fields->clear();
    auto more = Next();
    if (more.ok() && *more) fields->assign(cells_.begin(), cells_.end());
    return more;
  }

 private:
  static constexpr size_t kInitialBuffer = 1 << 16;

  // Offsets from the record's first byte (Data()).
  struct Cursor {
    size_t k = 0;         // next byte to read
    size_t w = 0;         // where the current cell's next byte goes (w <= k)
    size_t start = 0;     // the current cell's first byte
    size_t unquoted = 0;  // where the unquoted part of the current cell began
  };

  char* Data() { return buffer_.get() + begin_; }
  size_t Available() const { return end_ - begin_; }

  // The cell's bytes [cur->k, stop) follow what it holds so far.
  void Keep(Cursor* cur, size_t stop) {
    if (cur->w != cur->k) std::memmove(Data() + cur->w, Data() + cur->k, stop - cur->k);
    cur->w += stop - cur->k;
    cur->k = stop;
  }

  // The unquoted part of a cell, up to its comma or the line end. True when
  // the record ends with this cell.
  bool ScanUnquoted(Cursor* cur) {
    cur->unquoted = cur->k;
    while (true) {
      const char* p = Data();
      const size_t available = Available();
      const size_t end = FindCommaOrNewline(p, cur->k, available);
      Keep(cur, end);
      if (end == available) {
        if (More(cur)) continue;
        return true;  // end of input
      }
      ++cur->k;
      if (p[end] == ',') return false;
      // CRLF: the CR belongs to the line end (a lone CR stays in the cell).
      if (end > cur->unquoted && p[end - 1] == '\r') --cur->w;
      return true;
    }
  }

  // Makes more of the input available after what `cur` has read (called
  // when it has read everything available): moves the record to the front
  // of the buffer (cursor offsets stay valid) or grows the buffer up to the
  // record bound. A record past the bound is too long: its bytes are
  // dropped as they are read and `cur` starts over at 0 (its cells no
  // longer matter). False at the end of the input.
  bool More(Cursor* cur) {
    if (eof_) return false;
    if (begin_ > 0) {
      std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (end_ == capacity_) {
      if (capacity_ < limit_) {
        const size_t grown = std::min(limit_, capacity_ * 2);
        auto bigger = std::make_unique<char[]>(grown);
        std::memcpy(bigger.get(), buffer_.get(), end_);
        buffer_ = std::move(bigger);
        capacity_ = grown;
      } else {
        too_long_ = true;
        dropped_ += cur->k;
        *cur = Cursor();
        begin_ = end_ = 0;
      }
    }
    in_.read(buffer_.get() + end_, static_cast<std::streamsize>(capacity_ - end_));
    const auto got = static_cast<size_t>(in_.gcount());
    end_ += got;
    if (got == 0) eof_ = true;
    return got > 0;
  }

  std::istream& in_;
  const size_t max_record_bytes_;
  const size_t limit_;  // the buffer never grows past one record of the bound
  size_t capacity_;
  std::unique_ptr<char[]> buffer_;
  size_t begin_ = 0, end_ = 0;  // unread input: the current record starts at begin_
  bool eof_ = false;
  bool too_long_ = false;                         // the current record outgrew the buffer
  size_t dropped_ = 0;                            // its bytes dropped so far
  std::vector<std::pair<size_t, size_t>> spans_;  // the current record's cells: offset, length
  std::vector<std::string_view> cells_;
};

// Reads one line (without the newline) of at most `max` bytes; longer
// lines are consumed and reported as too long.
enum class LineResult { kLine, kTooLong, kEnd };
LineResult ReadLine(std::istream& in, size_t max, std::string* line) {
  line->clear();
  std::streambuf* sb = in.rdbuf();
  bool any = false, too_long = false;
  while (true) {
    int c = sb->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      if (!any) return LineResult::kEnd;
      break;
    }
    any = true;
    if (c == '\n') break;
    if (line->size() >= max) {
      too_long = true;
      continue;
    }
    line->push_back(static_cast<char>(c));
  }
  if (!line->empty() && line->back() == '\r') line->pop_back();
  return too_long ? LineResult::kTooLong : LineResult::kLine;
}

enum class CellKind { kString, kNumber, kInteger, kBool, kList, kMembers, kIgnored };

const std::map<std::string, CellKind, std::less<>>& CsvColumnKinds() {
  static const auto* kinds = new std::map<std::string, CellKind, std::less<>>{
      {"id", CellKind::kIgnored},
      {"state", CellKind::kIgnored},
      {"admin1", CellKind::kIgnored},
      {"created_at", CellKind::kIgnored},
      {"updated_at", CellKind::kIgnored},
      {"external_ref", CellKind::kString},
      {"full_name", CellKind::kString},
      {"host_country", CellKind::kString},
      {"lat", CellKind::kNumber},
      {"lon", CellKind::kNumber},
      {"location_precision_m", CellKind::kInteger},
      {"place.name", CellKind::kString},
      {"place.country", CellKind::kString},
      {"household_size", CellKind::kInteger},
      {"household.members", CellKind::kMembers},
      {"languages", CellKind::kList},
      {"contact.email", CellKind::kString},
      {"contact.phone", CellKind::kString},
      {"emergency_contact.name", CellKind::kString},
      {"emergency_contact.phone", CellKind::kString},
      {"emergency_contact.email", CellKind::kString},
      {"travel_document_expiry", CellKind::kString},
      {"vulnerabilities", CellKind::kList},
      {"consent.crisis_contact", CellKind::kBool},
      {"consent.share_aggregate_with_partners", CellKind::kBool},
      {"consent.share_with_international_orgs", CellKind::kBool},
      {"consent.recorded_at", CellKind::kString},
      {"consent.notice_version", CellKind::kString},
      {"retention_until", CellKind::kString},
  };
  return *kinds;
}

// Splits "fil; en;;" into {"fil", "en"}: items trimmed of spaces, empty
// ones dropped. Appends views into `cell` to `out`.
void SplitList(std::string_view cell, std::vector<std::string_view>* out) {
  size_t start = 0;
  while (start <= cell.size()) {
    size_t end = cell.find(';', start);
    if (end == std::string_view::npos) end = cell.size();
    std::string_view item = cell.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out->push_back(item);
    start = end + 1;
  }
}

struct CsvColumn {
  std::string name;
  CellKind kind;
  RegistrantField field = RegistrantField::kExternalRef;  // unless kIgnored
};

// CSV injection (OWASP "CSV Injection"): a spreadsheet runs a cell that
// starts with = + - @ tab or CR as a formula. Export puts an apostrophe in
// front of such free-text cells (spreadsheets show the text, not a formula,
// and hide the apostrophe); import takes exactly that apostrophe off again,
// so an exported file re-imports to the same values ("+63 917..." phones
// included).
bool StartsLikeFormula(std::string_view text) {
  return !text.empty() && std::string_view("=+-@\t\r").find(text.front()) != std::string_view::npos;
}
std::string FormulaGuard(std::string_view text) {
  // Built by append: GCC 12 at -O3 warns (-Wrestrict, a false positive) on
  // "'" + std::string(text).
  std::string out;
  out.reserve(text.size() + 1);
  if (StartsLikeFormula(text)) out += '\'';
  out += text;
  return out;
}
std::string_view UndoFormulaGuard(std::string_view cell) {
  if (cell.size() >= 2 && cell.front() == '\'' && StartsLikeFormula(cell.substr(1))) cell.remove_prefix(1);
  return cell;
}

// One CSV record as ValidateRegistrant reads it: each cell typed by its
// column (an empty cell is an absent field; a group such as contact is
// present when one of its cells is), so a row is accepted exactly when the
// same registrant POSTed as JSON would be. Reused across rows: Load()
// replaces the previous record; views point into the reader's buffer.
class CsvRecordFields final : public RegistrantSource {
 private:
  // A cell typed by its column's kind; only the member of that kind is set.
  struct Value {
    bool present = false;
    std::string_view text;
    double number = 0;
    int64_t integer = 0;
    bool boolean = false;
    size_t first = 0, count = 0;  // lists: items_[first, first + count); members: members_ count
  };
  // The cell's value as its kind's member, nullopt when the cell is empty.
  template <auto member>
  auto Typed(RegistrantField field) const {
    const Value& v = values_[static_cast<size_t>(field)];
    using T = std::remove_cvref_t<decltype(v.*member)>;
    return v.present ? std::optional<T>(v.*member) : std::nullopt;
  }

 public:
  // Types the cells in column order: the first cell that is not its
  // column's type (a number, a whole number, true|false, age_band:ISO3
  // items) is the row's error, before any other check.
  Status Load(const std::vector<CsvColumn>& columns, const std::vector<std::string_view>& cells) {
    if (cells.size() != columns.size()) {
      return InvalidArgument(
          "has " + std::to_string(cells.size()) + " cells, the header " + std::to_string(columns.size()), "");
    }
    for (auto& v : values_) v.present = false;
    groups_.fill(false);
    items_.clear();
    members_.clear();
    for (size_t i = 0; i < columns.size(); ++i) {
      const std::string_view cell = cells[i];
      const CsvColumn& column = columns[i];
      if (cell.empty() || column.kind == CellKind::kIgnored) continue;
      Value& v = values_[static_cast<size_t>(column.field)];
      switch (column.kind) {
        case CellKind::kString:
          v.text = UndoFormulaGuard(cell);
          break;
        case CellKind::kNumber: {
          auto [end, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), v.number);
          if (ec != std::errc() || end != cell.data() + cell.size())
            return InvalidArgument("must be a number", column.name);
          break;
        }
        case CellKind::kInteger: {
          auto [end, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), v.integer);
          if (ec != std::errc() || end != cell.data() + cell.size()) {
            return InvalidArgument("must be a whole number", column.name);
          }
          break;
        }
        case CellKind::kBool:
          if (cell == "true" || cell == "1" || cell == "yes") {
            v.boolean = true;
          } else if (cell == "false" || cell == "0" || cell == "no") {
            v.boolean = false;
          } else {
            return InvalidArgument("must be true or false", column.name);
          }
          break;
        case CellKind::kList:
          v.first = items_.size();
          SplitList(cell, &items_);
          v.count = items_.size() - v.first;
          break;
        case CellKind::kMembers: {
          const size_t first = items_.size();
          SplitList(cell, &items_);
          for (size_t k = first; k < items_.size(); ++k) {
            const std::string_view item = items_[k];
            const size_t colon = item.find(':');
            if (colon == std::string_view::npos) {
              return InvalidArgument(
                  "'" + std::string(item) + "' is not age_band:NATIONALITY, e.g. 18-59:PHL", column.name);
            }
            members_.push_back({item.substr(0, colon), item.substr(colon + 1)});
          }
          items_.resize(first);
          v.count = members_.size();
          break;
        }
        case CellKind::kIgnored:
          break;
      }
      v.present = true;
      if (auto group = RegistrantFieldGroup(column.field)) groups_[static_cast<size_t>(*group)] = true;
    }
    return Status::Ok();
  }

  // The header has refused unknown columns already.
  Status CheckUnknownFields() const override { return Status::Ok(); }
  Status CheckUnknownFields(RegistrantGroup) const override { return Status::Ok(); }
  Result<bool> HasGroup(RegistrantGroup group) const override { return groups_[static_cast<size_t>(group)]; }

  Result<std::optional<std::string_view>> String(RegistrantField field) const override {
    return Typed<&Value::text>(field);
  }
  Result<std::optional<double>> Number(RegistrantField field) const override {
    return Typed<&Value::number>(field);
  }
  Result<std::optional<int64_t>> Integer(RegistrantField field) const override {
    return Typed<&Value::integer>(field);
  }
  Result<std::optional<bool>> Bool(RegistrantField field) const override {
    return Typed<&Value::boolean>(field);
  }
  Result<std::optional<size_t>> ListSize(RegistrantField field) const override {
    return Typed<&Value::count>(field);
  }
  Result<std::string_view> ListString(RegistrantField field, size_t index) const override {
    return items_[values_[static_cast<size_t>(field)].first + index];
  }
  Result<HouseholdMemberView> Member(size_t index, std::string_view) const override {
    return HouseholdMemberView{members_[index].first, members_[index].second};
  }

 private:
  std::array<Value, kRegistrantFieldCount> values_;
  std::array<bool, kRegistrantGroupCount> groups_{};  // by RegistrantGroup
  std::vector<std::string_view> items_;
  std::vector<std::pair<std::string_view, std::string_view>> members_;
};

Result<std::vector<CsvColumn>> ParseCsvHeader(std::vector<std::string> header) {
  if (!header.empty() && header[0].rfind(kBom, 0) == 0) header[0].erase(0, kBom.size());
  std::vector<CsvColumn> columns;
  const auto& kinds = CsvColumnKinds();
  for (auto& name : header) {
    while (!name.empty() && name.back() == ' ') name.pop_back();
    while (!name.empty() && name.front() == ' ') name.erase(0, 1);
    auto it = kinds.find(name);
    if (it == kinds.end()) {
      return InvalidArgument("unknown CSV column '" + name + "' (see docs/openapi.yaml for the columns)",
                             name);
    }
    for (const auto& c : columns) {
      if (c.name == name) return InvalidArgument("repeated CSV column '" + name + "'", name);
    }
    CsvColumn column{name, it->second};
    // Every column but the ignored ones is the registrant field of that name.
    if (column.kind != CellKind::kIgnored) {
      auto field = RegistrantFieldNamed(name);
      if (!field) return Internal("CSV column '" + name + "' is no registrant field");
      column.field = *field;
    }
    columns.push_back(std::move(column));
  }
  for (const char* required : {"external_ref", "host_country"}) {
    if (std::none_of(columns.begin(), columns.end(),
                     [&](const CsvColumn& c) { return c.name == required; })) {
      return InvalidArgument(std::string("the CSV header lacks the column ") + required, required);
    }
  }
  return columns;
}

// Validated and sealed rows waiting for their transaction.
struct PendingRow {
  int64_t row;
  SealedRegistrant sealed;
};

// What the reader hands the writer: up to batch_rows valid rows, the rows
// rejected while reading them, and how far the input has been read.
struct Batch {
  std::vector<PendingRow> rows;
  std::vector<ImportError> rejects;  // in row order, at most max_errors
  int64_t rejected = 0;              // all of them, listed or not
  int64_t rows_read = 0;
  Status status;      // not OK: reading stopped with this error (the last batch)
  bool last = false;  // the input ends after this batch
};

// A bounded hand-off of batches from the reader thread to the writer: at
// most `capacity` batches wait, and at most `capacity` written ones go back
// to the reader for reuse, so memory stays bounded by (2 * capacity + 2)
// batches whatever the file size. Close() wakes both sides for good.
//
// Reuse matters for speed: the reader fills a written batch's rows again
// (their strings keep their capacity), and what the rows held is freed on
// the reader's thread, which allocated it. Freed on the writer's, every
// free took the reader's malloc arena lock against the reader's mallocs.
class BatchQueue {
 public:
  explicit BatchQueue(size_t capacity) : capacity_(capacity) {}

  // False when closed (the writer gave up): the reader stops.
  bool Push(Batch batch) {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return closed_ || queue_.size() < capacity_; });
    if (closed_) return false;
    queue_.push_back(std::move(batch));
    not_empty_.notify_one();
    return true;
  }
  Batch Pop() {
    std::unique_lock lock(mu_);
    not_empty_.wait(lock, [&] { return !queue_.empty(); });
    Batch b = std::move(queue_.front());
    queue_.pop_front();
    not_full_.notify_one();
    return b;
  }
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_full_.notify_all();
  }
  // The writer hands back a batch it has written.
  void Recycle(Batch batch) {
    std::lock_guard lock(mu_);
    if (spent_.size() < capacity_) spent_.push_back(std::move(batch));
  }
  // A written batch to fill again, or an empty one.
  Batch TakeSpent() {
    std::lock_guard lock(mu_);
    if (spent_.empty()) return Batch();
    Batch b = std::move(spent_.front());
    spent_.pop_front();
    return b;
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<Batch> queue_;
  std::deque<Batch> spent_;
  bool closed_ = false;
};

// Parses, validates and seals rows into batches; `emit` takes each full
// batch and returns false to stop reading. Runs on the reader thread (or
// inline): touches only the input stream, the gazetteer, the keys and the
// clock.
class RowValidator {
 public:
  // `spent` gives the batch to fill next: a written one to reuse, or an
  // empty one.
  RowValidator(const Token& token, const RegistryKeys& keys, const Clock& clock, const ImportOptions& options,
               std::function<bool(Batch)> emit, std::function<Batch()> spent)
      : token_(token), options_(options), emit_(std::move(emit)), spent_(std::move(spent)), sealer_(keys, clock) {
    validation_.gazetteer = options.gazetteer;
    validation_.retention_days = options.retention_days;
    validation_.clock = &clock;
    validation_.allow_read_only_fields = true;
    validated_.reserve(static_cast<size_t>(options.batch_rows));
  }

  void Reject(int64_t row, const Status& status) {
    ++batch_.rejected;
    if (listed_ < options_.max_errors) {
      ++listed_;
      batch_.rejects.push_back({row, status.field(), status.message()});
    }
  }

  // False: stop reading (the writer failed).
  bool Accept(int64_t row, const Result<json::object>& object) {
    batch_.rows_read = row;
    if (!object.ok()) {
      Reject(row, object.status());
      return true;
    }
    auto r = RegistrantFromJson(*object, token_.state, validation_);
    if (!r.ok()) {
      Reject(row, r.status());
      return true;
    }
    validated_.push_back({row, std::move(r).value()});
    if (static_cast<int>(validated_.size()) < BatchLimit()) return true;
    return Emit(false, Status::Ok());
  }

  // A CSV record: `loaded` is CsvRecordFields::Load's result for it. The
  // row is validated straight into the batch (no JSON object in between).
  bool Accept(int64_t row, const Status& loaded, const RegistrantSource& fields) {
    batch_.rows_read = row;
    if (!loaded.ok()) {
      Reject(row, loaded);
      return true;
    }
    Registrant& registrant =
        validated_.emplace_back(std::piecewise_construct, std::forward_as_tuple(row), std::tuple<>()).second;
    if (Status st = ValidateRegistrant(fields, token_.state, validation_, &registrant); !st.ok()) {
      validated_.pop_back();
      Reject(row, st);
      return true;
    }
    if (static_cast<int>(validated_.size()) < BatchLimit()) return true;
    return Emit(false, Status::Ok());
  }

  // The final batch: end of input, or `status` when reading failed.
  void Finish(Status status) { Emit(true, std::move(status)); }

 private:
  // The first batch is short, so that the writer starts after a few
  // thousand rows rather than after a whole batch (at 50k rows, ~0.2 s of
  // a 1M import with one thread idle).
  static constexpr int kFirstBatchRows = 5000;
  int BatchLimit() const { return emitted_ == 0 ? std::min(options_.batch_rows, kFirstBatchRows) : options_.batch_rows; }

  bool Emit(bool last, Status status) {
    // The batch goes to the writer in external_ref order: the
    // UNIQUE(state, external_ref) index is the one B-tree a file's order
    // hits at random, and ascending keys walk it page by page instead of
    // missing the CPU cache on every row. Stable, so of two rows with the
    // same external_ref the earlier in the file is stored. Ids are drawn in
    // this order too, so the (state, id) trees still take appends. Sealing
    // here keeps the encryption and the stored texts off the single SQLite
    // writer's thread.
    // (An order of indexes is sorted: moving whole registrants costs more.)
    order_.resize(validated_.size());
    for (size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<uint32_t>(i);
    std::stable_sort(order_.begin(), order_.end(), [&](uint32_t a, uint32_t b) {
      return validated_[a].second.external_ref < validated_[b].second.external_ref;
    });
    batch_.rows.resize(validated_.size());
    for (size_t i = 0; i < order_.size(); ++i) {
      auto& [row, registrant] = validated_[order_[i]];
      batch_.rows[i].row = row;
      sealer_.Seal(std::move(registrant), &batch_.rows[i].sealed);
      WipePersonal(&batch_.rows[i].sealed.registrant);
    }
    validated_.clear();
    ++emitted_;
    Batch next = spent_();
    next.rejects.clear();
    next.rejected = 0;
    next.status = Status::Ok();
    next.last = false;
    next.rows_read = batch_.rows_read;
    std::swap(next, batch_);
    next.last = last;
    next.status = std::move(status);
    return emit_(std::move(next));
  }

  const Token& token_;
  const ImportOptions& options_;
  std::function<bool(Batch)> emit_;
  std::function<Batch()> spent_;
  RegistrantValidation validation_;
  RegistrantSealer sealer_;
  std::vector<std::pair<int64_t, Registrant>> validated_;  // this batch's valid rows, file order
  std::vector<uint32_t> order_;                            // validated_ by external_ref
  Batch batch_;
  size_t listed_ = 0;  // rejects listed so far (duplicates found by the writer may add more)
  int64_t emitted_ = 0;  // batches handed on so far
};

// Writes batches on the caller's thread (the Db's). A transaction spans
// batches until it holds ImportOptions::commit_rows rows or has been open
// max_transaction_ms: the external_ref index takes a file's rows at random,
// so nearly every one of its pages is dirty in every transaction and written
// to the WAL (and checkpointed) again; fewer, larger transactions write it
// fewer times. Each batch still gets its own audit entry, in the
// transaction that stores its rows.
class BatchWriter {
 public:
  BatchWriter(Db& db, const Token& token, const RegistryKeys& keys, const Clock& clock,
              const ImportOptions& options)
      : db_(db), token_(token), keys_(keys), clock_(clock), options_(options) {}

  Status Write(Batch& batch) {
    if (!batch.rows.empty()) AMPARO_RETURN_IF_ERROR(Insert(batch));
    pending_rejected_ += batch.rejected;
    for (auto& e : batch.rejects) AddPendingError(std::move(e));
    for (auto& [row, st] : duplicates_) {
      ++pending_rejected_;
      AddPendingError({row, st.field(), st.message()});
    }
    duplicates_.clear();
    rows_read_ = std::max(rows_read_, batch.rows_read);
    if (batch.last || !tx_ || rows_in_transaction_ >= options_.commit_rows ||
        clock_.NowMs() - transaction_began_ms_ >= options_.max_transaction_ms) {
      return Commit();
    }
    return Status::Ok();
  }

  // Commits what is written so far (the reader failed: earlier rows stay).
  Status Flush() { return Commit(); }

  ImportReport& report() { return report_; }

 private:
  void AddPendingError(ImportError e) {
    if (report_.errors.size() + pending_errors_.size() < options_.max_errors) {
      pending_errors_.push_back(std::move(e));
    }
  }

  Status Insert(Batch& batch) {
    if (!tx_) {
      auto tx = Transaction::Begin(db_);
      if (!tx.ok()) return tx.status();
      tx_.emplace(std::move(tx).value());
      auto inserter = RegistrantInserter::Prepare(db_, keys_, clock_);
      if (!inserter.ok()) return Abort(inserter.status());
      inserter_.emplace(std::move(inserter).value());
      transaction_began_ms_ = clock_.NowMs();
    }
    int64_t imported = 0;
    for (auto& p : batch.rows) {
      Status st = inserter_->Insert(p.sealed);
      if (st.code() == StatusCode::kAlreadyExists) {
        duplicates_.emplace_back(p.row, st);
      } else if (!st.ok()) {
        return Abort(Status(
            st.code(), st.message() + " (after " + std::to_string(report_.imported) + " rows imported)"));
      } else {
        ++imported;
      }
    }
    // Rows arrive in external_ref order (RowValidator::Emit): the audit
    // names the span of the file they came from.
    int64_t first_row = batch.rows.front().row, last_row = first_row;
    for (const auto& p : batch.rows) {
      first_row = std::min(first_row, p.row);
      last_row = std::max(last_row, p.row);
    }
    AuditRecord record{token_.id,
                       token_.state,
                       "registrant.import",
                       options_.source.empty() ? "upload" : options_.source,
                       options_.purpose,
                       "rows " + std::to_string(first_row) + "-" + std::to_string(last_row) + ": " +
                           std::to_string(imported) + " imported"};
    auto seq = AppendAudit(db_, record, clock_);
    if (!seq.ok()) return Abort(seq.status());
    pending_imported_ += imported;
    rows_in_transaction_ += static_cast<int64_t>(batch.rows.size());
    return Status::Ok();
  }

  Status Commit() {
    if (tx_) {
      if (Status st = inserter_->Finish(); !st.ok()) return Abort(st);
      inserter_.reset();
      if (Status st = tx_->Commit(); !st.ok()) return Abort(st);
      tx_.reset();
      report_.imported += pending_imported_;
    }
    report_.rejected += pending_rejected_;
    for (auto& e : pending_errors_) report_.errors.push_back(std::move(e));
    pending_errors_.clear();
    pending_imported_ = pending_rejected_ = rows_in_transaction_ = 0;
    // Rejected rows since the last commit still count as progress.
    if (options_.progress && rows_read_ > rows_reported_) options_.progress(rows_read_);
    rows_reported_ = rows_read_;
    return Status::Ok();
  }

  // Rolls the open transaction back (nothing of it stays) and returns `st`.
  Status Abort(Status st) {
    inserter_.reset();
    tx_.reset();
    duplicates_.clear();
    return st;
  }

  Db& db_;
  const Token& token_;
  const RegistryKeys& keys_;
  const Clock& clock_;
  const ImportOptions& options_;
  ImportReport report_;
  std::optional<Transaction> tx_;
  std::optional<RegistrantInserter> inserter_;
  int64_t transaction_began_ms_ = 0;
  int64_t rows_in_transaction_ = 0;
  // Counted in the report when the transaction commits.
  int64_t pending_imported_ = 0, pending_rejected_ = 0;
  std::vector<ImportError> pending_errors_;
  std::vector<std::pair<int64_t, Status>> duplicates_;  // of the batch being written
  int64_t rows_read_ = 0, rows_reported_ = 0;
};

// Reads the whole input through `validator` (CSV after its header, or
// NDJSON). Errors from reading end up in the final batch.
void ReadRows(std::istream& in, RegistryFormat format, CsvReader* csv, const std::vector<CsvColumn>& columns,
              const ImportOptions& options, RowValidator& validator) {
  if (format == RegistryFormat::kCsv) {
    CsvRecordFields fields;
    for (int64_t row = 1;; ++row) {
      auto more = csv->Next();
      if (!more.ok() && more.status().code() != StatusCode::kInvalidArgument) {
        return validator.Finish(more.status());
      }
      if (more.ok() && !*more) break;
      if (!more.ok()) {
        if (!validator.Accept(row, more.status())) return;
        continue;
      }
      const std::vector<std::string_view>& cells = csv->cells();
      if (cells.size() == 1 && cells[0].empty()) {
        validator.Reject(row, InvalidArgument("the row is empty", ""));
        continue;
      }
      if (!validator.Accept(row, fields.Load(columns, cells), fields)) return;
    }
  } else {
    std::string line;
    for (int64_t row = 1;; ++row) {
      LineResult got = ReadLine(in, options.max_row_bytes, &line);
      if (got == LineResult::kEnd) break;
      if (got == LineResult::kTooLong) {
        if (!validator.Accept(row, InvalidArgument("the line is longer than " +
                                                       std::to_string(options.max_row_bytes) + " bytes",
                                                   ""))) {
          return;
        }
        continue;
      }
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      if (!validator.Accept(row, ParseJsonObject(line))) return;
    }
    if (in.bad()) return validator.Finish(Unavailable("reading the input failed"));
  }
  validator.Finish(Status::Ok());
}

// The import's connection settings, restored afterwards:
//  - page cache: a 10k-row transaction dirties more pages than the 2 MB
//    default holds, and spilling them to the WAL mid-transaction writes and
//    re-reads them;
//  - WAL auto-checkpoint: by default every commit past 1000 WAL pages
//    copies the WAL back into the database, so the index pages every batch
//    touches (the external_ref index is random) were copied once per
//    batch. Checkpointing every 256 MB of WAL (counted in pages of the
//    database's size: 16 KiB for a new gateway database) copies them once
//    per several batches; the WAL file stays bounded by that plus one
//    transaction, and is checkpointed when the import ends.
class ImportConnectionSettings {
 public:
  explicit ImportConnectionSettings(Db& db) : db_(db) {
    previous_cache_ = ReadPragma("cache_size", previous_cache_);
    previous_checkpoint_ = ReadPragma("wal_autocheckpoint", previous_checkpoint_);
    (void)db_.Exec("PRAGMA cache_size = -" + std::to_string(kImportCacheKib));
    const int64_t page_bytes = std::max<int64_t>(512, ReadPragma("page_size", 4096));
    (void)db_.Exec("PRAGMA wal_autocheckpoint = " + std::to_string(kImportCheckpointBytes / page_bytes));
  }
  ~ImportConnectionSettings() {
    // The WAL the import leaves (up to kImportCheckpointBytes) is copied
    // back now, on the import's time, not by whichever write comes next.
    (void)db_.Exec("PRAGMA wal_checkpoint(PASSIVE)");
    (void)db_.Exec("PRAGMA cache_size = " + std::to_string(previous_cache_));
    (void)db_.Exec("PRAGMA wal_autocheckpoint = " + std::to_string(previous_checkpoint_));
  }

 private:
  int64_t ReadPragma(const std::string& name, int64_t fallback) {
    auto q = db_.Prepare("PRAGMA " + name);
    if (!q.ok()) return fallback;
    auto row = q->Step();
    return row.ok() && *row ? q->ColumnInt(0) : fallback;
  }
  static constexpr int kImportCacheKib = 64 * 1024;
  static constexpr int64_t kImportCheckpointBytes = int64_t{256} << 20;
  Db& db_;
  int64_t previous_cache_ = -2000;
  int64_t previous_checkpoint_ = 1000;
};

std::string CsvCell(std::string_view value) {
  if (value.find_first_of(",\"\r\n") == std::string_view::npos &&
      (value.empty() || (value.front() != ' ' && value.back() != ' '))) {
    return std::string(value);
  }
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string JoinList(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ";") + i;
  return out;
}

std::string CsvRow(const Registrant& r) {
  std::string members;
  for (const auto& m : r.household_members)
    members += (members.empty() ? "" : ";") + m.age_band + ":" + m.nationality;
  // Consent never recorded stays blank, so that importing the row does not
  // record a consent nobody gave.
  const bool consented = r.consent.recorded_ms > 0;
  auto boolean = [&](bool b) { return consented ? std::string(b ? "true" : "false") : std::string(); };
  const std::vector<std::string> cells = {
      r.id,
      r.state,
      FormulaGuard(r.external_ref),
      FormulaGuard(r.full_name),
      r.host_country,
      JsonText(json::value(r.lat)),
      JsonText(json::value(r.lon)),
      r.location_precision_m > 0 ? std::to_string(r.location_precision_m) : "",
      FormulaGuard(r.place_name),
      r.place_name.empty() ? "" : r.host_country,
      r.admin1,
      std::to_string(r.household_size),
      members,
      JoinList(r.languages),
      FormulaGuard(r.contact.email),
      FormulaGuard(r.contact.phone),
      FormulaGuard(r.emergency_contact.name),
      FormulaGuard(r.emergency_contact.phone),
      FormulaGuard(r.emergency_contact.email),
      r.travel_document_expiry,
      JoinList(r.vulnerabilities),
      boolean(r.consent.crisis_contact),
      boolean(r.consent.share_aggregate_with_partners),
      boolean(r.consent.share_with_international_orgs),
      r.consent.recorded_ms > 0 ? FormatRfc3339(r.consent.recorded_ms) : "",
      FormulaGuard(r.consent.notice_version),
      FormatRfc3339(r.created_ms),
      FormatRfc3339(r.updated_ms),
      r.retention_until,
  };
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (i > 0) line += ',';
    line += CsvCell(cells[i]);
  }
  return line + "\r\n";
}

}  // namespace

Result<RegistryFormat> ParseRegistryFormat(std::string_view text) {
  if (text == "csv") return RegistryFormat::kCsv;
  if (text == "ndjson") return RegistryFormat::kNdjson;
  return InvalidArgument("must be csv or ndjson", "format");
}

std::string_view RegistryFormatContentType(RegistryFormat format) {
  return format == RegistryFormat::kCsv ? "text/csv; charset=utf-8" : "application/x-ndjson";
}

const std::vector<std::string>& RegistryCsvColumns() {
  static const std::vector<std::string> kColumns = {
      "id",
      "state",
      "external_ref",
      "full_name",
      "host_country",
      "lat",
      "lon",
      "location_precision_m",
      "place.name",
      "place.country",
      "admin1",
      "household_size",
      "household.members",
      "languages",
      "contact.email",
      "contact.phone",
      "emergency_contact.name",
      "emergency_contact.phone",
      "emergency_contact.email",
      "travel_document_expiry",
      "vulnerabilities",
      "consent.crisis_contact",
      "consent.share_aggregate_with_partners",
      "consent.share_with_international_orgs",
      "consent.recorded_at",
      "consent.notice_version",
      "created_at",
      "updated_at",
      "retention_until",
  };
  return kColumns;
}

Result<ImportReport> ImportRegistrants(Db& db, const Token& token, std::istream& in, RegistryFormat format,
                                       const RegistryKeys& keys, const Clock& clock,
                                       const ImportOptions& options) {
  if (options.batch_rows < 1) return InvalidArgument("must be at least 1", "batch_rows");
  // The header is read here so that a bad one fails the call before any
  // thread starts or any row is written.
  std::optional<CsvReader> csv;
  std::vector<CsvColumn> columns;
  if (format == RegistryFormat::kCsv) {
    csv.emplace(in, options.max_row_bytes);
    std::vector<std::string> cells;
    auto header = csv->Next(&cells);
    if (!header.ok()) return header.status();
    if (!*header) return InvalidArgument("the CSV input is empty: it needs a header row", "");
    auto parsed = ParseCsvHeader(cells);
    if (!parsed.ok()) return parsed.status();
    columns = std::move(parsed).value();
  }
  ImportConnectionSettings settings(db);
  BatchWriter writer(db, token, keys, clock, options);
  if (!options.parallel) {
    Status failed;
    Batch spare;
    RowValidator validator(
        token, keys, clock, options,
        [&](Batch batch) {
          if (!batch.status.ok()) {
            (void)writer.Flush();  // earlier batches stay imported, as documented
            failed = batch.status;
            return false;
          }
          failed = writer.Write(batch);
          spare = std::move(batch);
          return failed.ok();
        },
        [&] { return std::exchange(spare, Batch()); });
    ReadRows(in, format, csv ? &*csv : nullptr, columns, options, validator);
    if (!failed.ok()) return failed;
    return std::move(writer.report());
  }
  // Reading, parsing and validating on a second thread while this one
  // writes: the two halves cost about the same per row.
  BatchQueue queue(1);
  std::thread reader([&] {
    RowValidator validator(
        token, keys, clock, options, [&](Batch batch) { return queue.Push(std::move(batch)); },
        [&] { return queue.TakeSpent(); });
    ReadRows(in, format, csv ? &*csv : nullptr, columns, options, validator);
  });
  Status failed;
  while (true) {
    Batch batch = queue.Pop();
    if (!batch.status.ok()) {
      (void)writer.Flush();  // earlier batches stay imported, as documented
      failed = batch.status;
      break;
    }
    failed = writer.Write(batch);
    if (!failed.ok() || batch.last) break;
    queue.Recycle(std::move(batch));
  }
  queue.Close();  // a reader blocked on a full queue returns
  reader.join();
  if (!failed.ok()) return failed;
  return std::move(writer.report());
}

Result<int64_t> ExportRegistrants(Db& db, const Token& token, std::ostream& out, RegistryFormat format,
                                  const RegistryKeys& keys, const Clock& clock, std::string_view purpose) {
  if (format == RegistryFormat::kCsv) {
    const auto& columns = RegistryCsvColumns();
    for (size_t i = 0; i < columns.size(); ++i) out << (i ? "," : "") << columns[i];
    out << "\r\n";
  }
  Access access{token.id, std::string(purpose)};
  return ForEachRegistrant(db, token.state, keys, access, format == RegistryFormat::kCsv ? "csv" : "ndjson",
                           clock, [&](const Registrant& r) -> Status {
                             if (format == RegistryFormat::kCsv) {
                               out << CsvRow(r);
                             } else {
                               out << JsonText(RegistrantToJson(r, /*with_personal=*/true)) << "\n";
                             }
                             if (!out) return Unavailable("writing the export failed");
                             return Status::Ok();
                           });
}

}  // namespace amparo::gateway
