#include "tests/support/test_database.h"

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <pqxx/pqxx>
#include <random>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "relay/store/migrations.h"
#include "tests/support/temp_dir.h"

namespace relay::testing {

struct TestDatabase::Connection {
  explicit Connection(const std::string& url) : conn(url) {}
  pqxx::connection conn;
};

namespace {

std::string trim(std::string s) {
  const auto not_space = [](char c) { return c != ' ' && c != '\n' && c != '\r' && c != '\t'; };
  while (!s.empty() && !not_space(s.back())) {
    s.pop_back();
  }
  std::size_t start = 0;
  while (start < s.size() && !not_space(s[start])) {
    ++start;
  }
  return s.substr(start);
}

std::string random_hex(int digits) {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < digits; ++i) {
    out.push_back(kHex[gen() % 16]);
  }
  return out;
}

// Replaces the database path of a postgresql:// URL, keeping any ?query.
std::string with_database(const std::string& url, const std::string& db) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) {
    throw std::runtime_error("TestDatabase: not a postgresql:// URL: " + url);
  }
  const auto query = url.find('?', scheme + 3);
  const std::string base = url.substr(0, query);
  const std::string rest = query == std::string::npos ? "" : url.substr(query);
  const auto slash = base.find('/', scheme + 3);
  const std::string authority = slash == std::string::npos ? base : base.substr(0, slash);
  return authority + "/" + db + rest;
}

// A connection error or a server shutdown: worth one retry on a fresh connection.
bool is_connection_loss(const pqxx::sql_error& e) {
  const std::string state = e.sqlstate();
  return state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0;
}

}  // namespace

std::string test_cluster_url() {
  const char* dir = std::getenv("RELAY_TEST_PG_DIR");
  if (dir == nullptr || *dir == '\0') {
    throw std::runtime_error(
        "RELAY_TEST_PG_DIR is not set: run integration tests through ctest (the postgres_up "
        "fixture "
        "starts the cluster), or run `scripts/pg start DIR` and export RELAY_TEST_PG_DIR=DIR");
  }
  const std::string url = trim(read_file(std::string(dir) + "/url"));
  if (url.empty()) {
    throw std::runtime_error(std::string("no cluster URL in ") + dir +
                             "/url: is the test cluster running? (scripts/pg start " + dir + ")");
  }
  return url;
}

TestDatabase TestDatabase::create() { return TestDatabase(test_cluster_url(), true); }

TestDatabase TestDatabase::create_empty() { return TestDatabase(test_cluster_url(), false); }

TestDatabase TestDatabase::create_on(const std::string& admin_url) {
  return TestDatabase(admin_url, true);
}

TestDatabase::TestDatabase(std::string admin_url, bool migrate) : admin_url_(std::move(admin_url)) {
  name_ = "relay_it_" + random_hex(16);
  url_ = with_database(admin_url_, name_);
  {
    pqxx::connection admin(admin_url_);
    pqxx::nontransaction tx(admin);
    tx.exec("CREATE DATABASE " + tx.quote_name(name_));
  }
  if (!migrate) {
    return;
  }
  std::ostringstream log;
  auto applied = relay::store::migrate(url_, log);
  if (!applied) {
    const std::string message = applied.error().message;
    drop();  // the constructor throws, so the destructor will not run
    throw std::runtime_error("TestDatabase: migrations failed: " + message + "\n" + log.str());
  }
}

TestDatabase::TestDatabase(TestDatabase&& other) noexcept
    : admin_url_(std::move(other.admin_url_)),
      name_(std::move(other.name_)),
      url_(std::move(other.url_)),
      conn_(std::move(other.conn_)) {
  other.name_.clear();
}

TestDatabase::~TestDatabase() { drop(); }

void TestDatabase::drop() noexcept {
  conn_.reset();
  if (name_.empty()) {
    return;
  }
  try {
    pqxx::connection admin(admin_url_);
    pqxx::nontransaction tx(admin);
    // A logical replication slot (WAL source tests) keeps its database from being dropped, and
    // retains WAL for the whole cluster: end its reader, then drop it (a terminated walsender
    // lets go of its slot a moment later, so look again until it has).
    const std::string slots = "FROM pg_replication_slots WHERE database = " + tx.quote(name_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (tx.exec("SELECT 1 " + slots).size() > 0 && std::chrono::steady_clock::now() < deadline) {
      tx.exec("SELECT pg_terminate_backend(active_pid) " + slots + " AND active_pid IS NOT NULL");
      try {
        tx.exec("SELECT pg_drop_replication_slot(slot_name) " + slots + " AND NOT active");
      } catch (const pqxx::sql_error&) {
        // became active again or is being dropped by its owner: look again
      }
      tx.exec("SELECT pg_sleep(0.01)");
    }
    tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name_) + " WITH (FORCE)");
  } catch (const std::exception& e) {
    std::cerr << "TestDatabase: could not drop " << name_ << ": " << e.what() << "\n";
  } catch (...) {
    std::cerr << "TestDatabase: could not drop " << name_ << "\n";
  }
  name_.clear();
}

std::vector<std::vector<std::string>> TestDatabase::query(const std::string& sql) {
  for (int attempt = 1;; ++attempt) {
    try {
      if (!conn_ || !conn_->conn.is_open()) {
        conn_ = std::make_unique<Connection>(url_);
      }
      pqxx::nontransaction tx(conn_->conn);
      const pqxx::result r = tx.exec(sql);
      std::vector<std::vector<std::string>> out;
      out.reserve(r.size());
      for (const auto& row : r) {
        std::vector<std::string> cells;
        cells.reserve(row.size());
        for (const auto& field : row) {
          cells.emplace_back(field.is_null() ? "" : field.c_str());
        }
        out.push_back(std::move(cells));
      }
      return out;
    } catch (const pqxx::broken_connection&) {
      conn_.reset();
      if (attempt >= 2) {
        throw;
      }
    } catch (const pqxx::sql_error& e) {
      if (!is_connection_loss(e)) {
        throw;
      }
      conn_.reset();
      if (attempt >= 2) {
        throw;
      }
    }
  }
}

void TestDatabase::exec(const std::string& sql) { (void)query(sql); }

std::string TestDatabase::value(const std::string& sql) {
  const auto r = query(sql);
  if (r.empty() || r[0].empty()) {
    return "";
  }
  return r[0][0];
}

long long TestDatabase::count(const std::string& table_or_where) {
  const std::string v = value("SELECT count(*) FROM " + table_or_where);
  return std::stoll(v);
}

std::vector<std::vector<std::string>> TestDatabase::rows(const std::string& sql) {
  return query(sql);
}

}  // namespace relay::testing
